"""Read Labelme JSON annotations into shapely geometries and lesion masks.

Every format Labelme has written is accepted: the 2018 files (no ``version``, ``flags``,
``imageHeight``/``imageWidth`` or ``shape_type``), 4.x files with the legacy top-level
``lineColor``/``fillColor`` and per-shape ``line_color``/``fill_color`` keys (ignored), and 5.x
files with ``description`` and ``mask`` shapes.

How each ``shape_type`` becomes an area (pixel coordinates, ``x`` = column):

* ``polygon`` (and a missing ``shape_type``), ``oriented_rectangle`` (4 points): the polygon.
  Self-intersecting polygons are repaired with ``shapely.make_valid`` (structure method: all
  the outline encloses is kept, a bow-tie keeps both lobes; see
  :func:`~.rasterize.make_polygonal`); collinear ones have no area and are reported as
  degenerate.
* ``rectangle``: the axis-aligned box spanned by its 2 corner points.
* ``circle``: the disc through the rim point (2 points: centre, rim).
* ``point``: a disc of ``point_radius`` px (Labelme's own converter draws radius 5).
* ``line`` (2 points) and ``linestrip`` (2+ points): buffered to ``line_width`` px (Labelme
  draws width 10) with **flat caps** and **round joins**, as Labelme's converter draws them
  with PIL (no extension past the end points, no notch at turns).
* ``mask``: the base64 PNG patch is pasted with its top-left pixel at ``round(points[0])``, as
  Labelme does, and becomes the exact union of its pixel squares, so rasterizing it with the
  pixel-centre rule gives back exactly the patch's pixels.

Discs are polygons with the true circle's area (see :func:`~.rasterize.disc`). Geometries are
clipped to the image when its size is known. These geometries are what the ``pixel_centre`` rule
rasterizes and what validation, clipping and repair work on; the default ``labelme`` rule draws
each shape's points as the file has them, exactly as Labelme's converter does (see
:mod:`multitask_dr.datasets.rasterize` for both rules and what each counts as inside). Shapes
without area (collinear points, a zero radius) are reported and dropped under both rules,
although Labelme would paint their outline.

Bad input goes through a :class:`~multitask_dr.datasets.problems.ProblemLog`: strict mode
raises :class:`~multitask_dr.datasets.problems.DataError` naming the file and the shape index;
lenient mode skips the bad shape (or file), logs it and keeps the rest.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Final

import numpy as np
import shapely
from PIL import Image, ImageOps
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from multitask_dr.datasets.images import decode_image, to_rgb
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.datasets.rasterize import (
    DEFAULT_RASTERIZE,
    IGNORE_CHANNEL,
    LabelmeDrawing,
    RasterizeRule,
    check_rule,
    disc,
    disc_quad_segs,
    make_polygonal,
    rasterize_labelme,
    rasterize_shapes,
)
from multitask_dr.lesions import (
    DEFAULT_LABEL_MAP,
    IGNORE_LABELS,
    IGNORE_TARGET,
    LESIONS,
    NUM_LESIONS,
    SKIP_TARGET,
)

log = logging.getLogger(__name__)

#: Extensions tried, in order, when looking for the image next to a Labelme file.
IMAGE_EXTENSIONS: Final[tuple[str, ...]] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".webp",
)

#: Number of points each shape type needs: ``(minimum, maximum)``; ``None`` = no maximum.
SHAPE_POINTS: Final[dict[str, tuple[int, int | None]]] = {
    "polygon": (3, None),
    "rectangle": (2, 2),
    "circle": (2, 2),
    "point": (1, 1),
    "line": (2, 2),
    "linestrip": (2, None),
    "oriented_rectangle": (4, 4),
    "mask": (2, 2),
}

#: How far (px) an annotated point may lie past the image border before it is reported.
#: Labelme's own example ``2011_000006.json`` has a vertex 0.4 px below the image: clicks on
#: the border land there, and reporting them would make strict mode reject Labelme's files.
#: Such points are clipped silently; points further out are clipped and reported.
EDGE_TOLERANCE: Final[float] = 1.0

_EXIF_ORIENTATION: Final[int] = 0x0112
_TRANSPOSED_ORIENTATIONS: Final[frozenset[int]] = frozenset({5, 6, 7, 8})
_DATA_URI: Final[re.Pattern[str]] = re.compile(r"^data:[^,]*;base64,")
_IGNORE_KEYS: Final[frozenset[str]] = frozenset(label.strip().lower() for label in IGNORE_LABELS)


@dataclass(frozen=True)
class LabelmeShape:
    """One Labelme shape as an area.

    Attributes:
        label: The label as written in the file.
        lesion: Lesion name from :data:`~multitask_dr.lesions.LESIONS`, or ``None`` for an
            ignore region (``__ignore__``).
        geometry: Valid, non-empty Polygon or MultiPolygon in pixel coordinates.
        shape_type: Labelme's ``shape_type`` (``"polygon"`` when the file has none).
        group_id: Labelme's instance group, if any.
        index: Position of the shape in the file's ``shapes`` list (for messages).
        points: ``(N, 2)`` float coordinates exactly as in the file (not clipped or repaired):
            what the ``labelme`` rule draws.
        patch: For ``mask`` shapes the decoded boolean patch, else ``None``.
    """

    label: str
    lesion: str | None
    geometry: Polygon | MultiPolygon
    shape_type: str
    group_id: int | None = None
    index: int = -1
    points: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), compare=False)
    patch: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LabelmeAnnotation:
    """A parsed Labelme file.

    Attributes:
        path: The JSON file.
        image_path: The image file: the one found at read time, else where ``imagePath``
            points (it may not exist), else ``None`` when the file names no separate image.
        image_data: Decoded bytes of the embedded ``imageData``, if any.
        height: Image height, or ``None`` when neither the file nor an image tells it.
        width: Image width, or ``None`` likewise.
        shapes: The usable shapes, in file order (bad ones were reported and dropped).
        flags: Image-level flags (Labelme's classification labels).
        version: Labelme version that wrote the file (``None`` for 2018 files).
        point_radius: Radius ``point`` shapes were read with (both rules draw it).
        line_width: Width ``line``/``linestrip`` shapes were read with (both rules draw it).
    """

    path: Path
    image_path: Path | None
    image_data: bytes | None
    height: int | None
    width: int | None
    shapes: tuple[LabelmeShape, ...]
    flags: dict[str, bool] = field(default_factory=dict)
    version: str | None = None
    point_radius: float = 5.0
    line_width: float = 10.0


class _SkippedShape(Exception):
    """A shape whose label ``label_map`` sends to ``none``, or that it does not know."""

    def __init__(self, label: str, known: bool) -> None:
        super().__init__(label)
        self.label = label
        self.known = known


class _ShapeError(Exception):
    """A shape-level fault; carries what lenient mode skips."""

    def __init__(self, reason: str, skipped: str = "shape") -> None:
        super().__init__(reason)
        self.reason = reason
        self.skipped = skipped


def normalise_label_map(label_map: Mapping[str, str | None]) -> dict[str, str]:
    """Lower-case, strip and check a label table.

    Args:
        label_map: Labelme label -> lesion name (e.g. ``{"Hemorrhage": "HE"}``),
            :data:`~multitask_dr.lesions.IGNORE_TARGET` (``ignore``: an ignore region) or
            :data:`~multitask_dr.lesions.SKIP_TARGET` (``none``, or YAML ``null``: not one of
            our lesions, left out without a report).

    Returns:
        The table with stripped lower-case keys and values ``MA``/``HE``/``EX``/``SE``,
        ``ignore`` or ``none``.

    Raises:
        ValueError: If a value is none of those.
    """
    table: dict[str, str] = {}
    for label, target in label_map.items():
        value = SKIP_TARGET if target is None else str(target).strip()
        if value.upper() in LESIONS:
            value = value.upper()
        elif value.lower() in (IGNORE_TARGET, SKIP_TARGET):
            value = value.lower()
        else:
            raise ValueError(
                f"label_map maps {label!r} to {target!r}: use a lesion {LESIONS}, "
                f"{IGNORE_TARGET!r} (ignore region) or {SKIP_TARGET!r} (not one of ours)"
            )
        table[str(label).strip().lower()] = value
    return table


def read_labelme(
    path: str | Path,
    *,
    label_map: Mapping[str, str | None] = DEFAULT_LABEL_MAP,
    problems: ProblemLog,
    point_radius: float = 5.0,
    line_width: float = 10.0,
) -> LabelmeAnnotation | None:
    """Parse a Labelme JSON file into shapely shapes.

    Args:
        path: The ``.json`` file.
        label_map: Labelme label -> lesion name, matched case-insensitively after stripping
            whitespace. ``__ignore__`` always means an ignore region.
        problems: Where bad input is reported (strict mode raises on the first).
        point_radius: Radius in pixels of the disc a ``point`` shape covers.
        line_width: Width in pixels of the band a ``line``/``linestrip`` covers (a whole
            number for the ``labelme`` rule, which draws with PIL).

    Returns:
        The annotation, or ``None`` when the whole file is unusable (lenient mode).

    Raises:
        DataError: In strict mode, on the first problem (message names file and shape index).
        ValueError: If ``label_map`` names an unknown lesion or a size parameter is not > 0.
    """
    path = Path(path)
    table = normalise_label_map(label_map)
    if not point_radius > 0 or not line_width > 0:
        raise ValueError(f"point_radius and line_width must be > 0: {point_radius}, {line_width}")
    try:
        data = json.loads(path.read_bytes())
    except OSError as error:
        problems.report(path, f"cannot read Labelme file: {error.strerror or error}")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problems.report(path, f"not valid JSON: {error}")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        found = type(data).__name__ if not isinstance(data, dict) else "no 'shapes' list"
        problems.report(
            path, f"not a Labelme file: expected a JSON object with a 'shapes' list, found {found}"
        )
        return None

    image_data, embedded_size = _read_image_data(path, data.get("imageData"), problems)
    image_path = _find_image(path, data.get("imagePath"))
    height, width = _image_size(path, data, embedded_size, image_path, problems)

    shapes: list[LabelmeShape] = []
    unknown: Counter[str] = Counter()
    first_unknown: dict[str, int] = {}
    for index, raw in enumerate(data["shapes"]):
        try:
            shape = _parse_shape(
                raw, index, table, height, width, point_radius, line_width, path, problems
            )
        except _SkippedShape as skipped:
            if not skipped.known:
                unknown[skipped.label] += 1
                first_unknown.setdefault(skipped.label, index)
            continue
        except _ShapeError as error:
            problems.report(path, f"shape {index}: {error.reason}", skipped=error.skipped)
            continue
        shapes.append(shape)
    # One line per unknown label and file, not one per shape: a foreign label set (HEI-MED's
    # has a dozen names) would otherwise bury every other message.
    for label, count in sorted(unknown.items(), key=lambda item: first_unknown[item[0]]):
        problems.report(
            path,
            f"shape {first_unknown[label]}: unknown label {label!r} on {count} shape(s); "
            f"map it in label_map to one of "
            f"{', '.join(LESIONS)}, {IGNORE_TARGET!r} or {SKIP_TARGET!r} ({len(table)} labels "
            "known)",
            skipped="shape",
        )

    flags = data.get("flags")
    version = data.get("version")
    return LabelmeAnnotation(
        path=path,
        image_path=image_path,
        image_data=image_data,
        height=height,
        width=width,
        shapes=tuple(shapes),
        flags={str(k): bool(v) for k, v in flags.items()} if isinstance(flags, dict) else {},
        version=version if isinstance(version, str) else None,
        point_radius=point_radius,
        line_width=line_width,
    )


def rasterize_annotation(
    annotation: LabelmeAnnotation,
    height: int | None = None,
    width: int | None = None,
    *,
    rasterize: RasterizeRule = DEFAULT_RASTERIZE,
) -> np.ndarray:
    """Rasterize an annotation into a lesion mask.

    Args:
        annotation: From :func:`read_labelme`.
        height: Image height; needed when the annotation does not know its size, and must
            match it when it does.
        width: Image width, likewise.
        rasterize: ``labelme`` (default: Labelme's own converter, pixel for pixel) or
            ``pixel_centre`` (area-unbiased, on the repaired geometries); see
            :mod:`multitask_dr.datasets.rasterize`.

    Returns:
        ``(H, W, 4)`` uint8 mask in :data:`~multitask_dr.lesions.LESIONS` channel order, 0/1,
        with :data:`~multitask_dr.lesions.IGNORE_INDEX` in every channel under ``__ignore__``
        regions (they win over lesions).

    Raises:
        DataError: If the size is unknown or disagrees with the annotation's.
        ValueError: If only one of ``height``/``width`` is given, or on an unknown rule.
    """
    check_rule(rasterize)
    if (height is None) != (width is None):
        raise ValueError("pass both height and width, or neither")
    known = annotation.height is not None and annotation.width is not None
    if height is not None and known and (height, width) != (annotation.height, annotation.width):
        raise DataError(
            f"annotation is for a {annotation.width}x{annotation.height} image, asked to "
            f"rasterize it at {width}x{height}",
            path=annotation.path,
        )
    if height is None or width is None:
        if not known:
            raise DataError(
                "image size unknown (no imageHeight/imageWidth, no imageData, image not "
                "found); pass height= and width=",
                path=annotation.path,
            )
        height, width = annotation.height, annotation.width
    assert height is not None and width is not None  # narrowed above, for the type checker
    channels = [
        IGNORE_CHANNEL if shape.lesion is None else LESIONS.index(shape.lesion)
        for shape in annotation.shapes
    ]
    if rasterize == "labelme":
        drawings = [
            LabelmeDrawing(channel, shape.shape_type, shape.points, shape.patch)
            for channel, shape in zip(channels, annotation.shapes, strict=True)
        ]
        return rasterize_labelme(
            drawings,
            height,
            width,
            NUM_LESIONS,
            point_size=annotation.point_radius,
            line_width=annotation.line_width,
        )
    pairs = [(c, shape.geometry) for c, shape in zip(channels, annotation.shapes, strict=True)]
    # read_labelme already made every geometry valid and polygonal.
    return rasterize_shapes(pairs, height, width, NUM_LESIONS, validate=False)


def load_labelme_image(annotation: LabelmeAnnotation, problems: ProblemLog) -> np.ndarray | None:
    """Load the image an annotation belongs to, as RGB.

    The embedded ``imageData`` wins; otherwise ``imagePath`` (relative to the JSON, Windows
    separators accepted), then a sibling of the JSON with the same stem and an image extension
    (covers ``imagePath`` pointing at the JSON itself, as in Labelme's tutorial file, or at a
    file that moved). EXIF orientation is applied, as Labelme does when annotating.

    Args:
        annotation: From :func:`read_labelme`.
        problems: Where a missing, unreadable or wrongly sized image is reported.

    Returns:
        ``(H, W, 3)`` uint8 RGB array, or ``None`` (lenient mode) when no usable image exists.

    Raises:
        DataError: In strict mode, when no usable image exists; the message names the JSON and
            every path tried.
    """
    path = annotation.path
    if annotation.image_data is not None:
        try:
            return _check_image_size(annotation, _decode_rgb(annotation.image_data), "imageData")
        except _ShapeError as error:
            problems.report(path, error.reason, skipped=error.skipped)
            return None
        except (OSError, SyntaxError, ValueError) as error:
            problems.report(
                path,
                f"embedded imageData cannot be decoded ({error}); trying the image file instead",
                skipped="imageData",
            )
    tried = _image_candidates(path, annotation.image_path)
    for candidate in tried:
        if not candidate.is_file():
            continue
        try:
            with Image.open(candidate) as image:
                rgb = _to_rgb(image)
            return _check_image_size(annotation, rgb, str(candidate))
        except _ShapeError as error:
            problems.report(path, error.reason, skipped=error.skipped)
            return None
        except (OSError, SyntaxError, ValueError) as error:
            problems.report(path, f"image {candidate} cannot be read: {error}")
            return None
    siblings = set(_image_candidates(path, None))
    declared = [str(p) for p in tried if p not in siblings]
    pattern = f"{path.with_suffix('')}.{{{','.join(e[1:] for e in IMAGE_EXTENSIONS)}}}"
    listed = ", ".join([*declared, f"{pattern} (lower and upper case)"])
    problems.report(path, f"image not found for this Labelme file; tried {listed}")
    return None


# --------------------------------------------------------------------------------------------
# Image helpers


def _to_rgb(image: Image.Image) -> np.ndarray:
    # The project's one pixel conversion (16-bit scaled, not clipped), after EXIF orientation.
    return to_rgb(ImageOps.exif_transpose(image))


def _decode_rgb(data: bytes) -> np.ndarray:
    return decode_image(data, exif_transpose=True)


def _header_size(image: Image.Image) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, read from the header only."""
    width, height = image.size
    if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width


def _check_image_size(annotation: LabelmeAnnotation, rgb: np.ndarray, source: str) -> np.ndarray:
    expected = (annotation.height, annotation.width)
    if None not in expected and rgb.shape[:2] != expected:
        raise _ShapeError(
            f"image {source} is {rgb.shape[1]}x{rgb.shape[0]} but the annotation is for "
            f"{annotation.width}x{annotation.height}",
            skipped="file",
        )
    return rgb


def _read_image_data(
    path: Path, value: Any, problems: ProblemLog
) -> tuple[bytes | None, tuple[int, int] | None]:
    """Decode ``imageData`` (base64) and read its size from the image header."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        problems.report(path, "imageData is not a base64 string", skipped="imageData")
        return None, None
    try:
        data = base64.b64decode(_DATA_URI.sub("", value, count=1), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            size = _header_size(image)
    except (binascii.Error, ValueError, OSError, SyntaxError) as error:
        problems.report(path, f"imageData cannot be decoded: {error}", skipped="imageData")
        return None, None
    return data, size


def _image_candidates(json_path: Path, image_path: Path | None) -> list[Path]:
    """Paths to try for the image, in order, without the JSON itself and duplicates."""
    candidates: list[Path] = []
    if image_path is not None:
        candidates += [image_path, json_path.parent / image_path.name]
    candidates += [json_path.with_suffix(ext) for ext in IMAGE_EXTENSIONS]
    candidates += [json_path.with_suffix(ext.upper()) for ext in IMAGE_EXTENSIONS]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate != json_path and candidate not in unique:
            unique.append(candidate)
    return unique


def _find_image(json_path: Path, value: Any) -> Path | None:
    declared: Path | None = None
    if isinstance(value, str) and value.strip():
        # Labelme on Windows writes backslashes; PureWindowsPath reads both separators.
        relative = PureWindowsPath(value.strip())
        declared = (
            Path(relative.name)
            if relative.is_absolute() or relative.drive
            else Path(*relative.parts)
        )
        declared = json_path.parent / declared
        if declared == json_path:
            declared = None
    for candidate in _image_candidates(json_path, declared):
        if candidate.is_file():
            return candidate
    return declared


def _image_size(
    path: Path,
    data: dict[str, Any],
    embedded: tuple[int, int] | None,
    image_path: Path | None,
    problems: ProblemLog,
) -> tuple[int | None, int | None]:
    declared: tuple[int, int] | None = None
    raw_h, raw_w = data.get("imageHeight"), data.get("imageWidth")
    if raw_h is not None or raw_w is not None:
        if _is_size(raw_h) and _is_size(raw_w):
            declared = (int(raw_h), int(raw_w))
        else:
            problems.report(
                path,
                f"invalid imageHeight/imageWidth {raw_h!r}/{raw_w!r}; size taken from the image",
                skipped="declared size",
            )
    if embedded is not None:
        if declared is not None and declared != embedded:
            problems.report(
                path,
                f"imageHeight/imageWidth say {declared[1]}x{declared[0]} but the embedded image "
                f"is {embedded[1]}x{embedded[0]}; using the image's size",
                skipped="declared size",
            )
        return embedded
    if declared is not None:
        return declared
    if image_path is not None and image_path.is_file():
        try:
            with Image.open(image_path) as image:
                return _header_size(image)
        except (OSError, SyntaxError, ValueError):
            # Reported by load_labelme_image if anyone loads it; the size just stays unknown.
            log.debug("%s: cannot read the header of %s", path, image_path)
    return None, None


def _is_size(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == int(value)
        and value > 0
    )


# --------------------------------------------------------------------------------------------
# Shapes


def _parse_shape(
    raw: Any,
    index: int,
    table: dict[str, str],
    height: int | None,
    width: int | None,
    point_radius: float,
    line_width: float,
    path: Path,
    problems: ProblemLog,
) -> LabelmeShape:
    if not isinstance(raw, dict):
        raise _ShapeError(f"not a JSON object but {type(raw).__name__}")
    label = raw.get("label")
    if not isinstance(label, str):
        raise _ShapeError(f"missing or non-text 'label' ({label!r})")
    key = label.strip().lower()
    shape_type = raw.get("shape_type")
    shape_type = "polygon" if shape_type is None else shape_type  # the 2018 format has none
    where = f"{label!r} ({shape_type})"
    target = IGNORE_TARGET if key in _IGNORE_KEYS else table.get(key)
    if target is None or target == SKIP_TARGET:
        raise _SkippedShape(label, known=target is not None)
    lesion = None if target == IGNORE_TARGET else target
    if not isinstance(shape_type, str) or shape_type not in SHAPE_POINTS:
        raise _ShapeError(
            f"{where}: unknown shape_type {shape_type!r} (known: {', '.join(SHAPE_POINTS)})"
        )
    points = _parse_points(raw.get("points"), where)
    low, high = SHAPE_POINTS[shape_type]
    if len(points) < low or (high is not None and len(points) > high):
        wanted = f"{low}" if low == high else f"at least {low}" if high is None else f"{low}-{high}"
        raise _ShapeError(f"{where}: needs {wanted} point(s), got {len(points)}")

    patch = _decode_patch(raw.get("mask"), where) if shape_type == "mask" else None
    geometry = _geometry(shape_type, points, patch, point_radius, line_width, where)
    if geometry.is_empty or geometry.area <= 0:
        raise _ShapeError(f"{where}: degenerate shape with zero area (collinear/repeated points)")
    if height is not None and width is not None:
        geometry = _clip(geometry, points, height, width, where, path, index, problems)

    group_id = raw.get("group_id")
    return LabelmeShape(
        label=label,
        lesion=lesion,
        geometry=geometry,
        shape_type=shape_type,
        group_id=group_id if isinstance(group_id, int) and not isinstance(group_id, bool) else None,
        index=index,
        points=points,
        patch=patch,
    )


def _parse_points(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in value
    ):
        raise _ShapeError(f"{where}: 'points' must be a list of [x, y] numbers")
    points = np.asarray(value, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise _ShapeError(f"{where}: NaN or infinite coordinates")
    return points


def _geometry(
    shape_type: str,
    points: np.ndarray,
    patch: np.ndarray | None,
    point_radius: float,
    line_width: float,
    where: str,
) -> BaseGeometry:
    if shape_type in ("polygon", "oriented_rectangle"):
        polygon = Polygon(points)
        repaired = make_polygonal(polygon)
        if repaired is not polygon:
            # Only the pixel_centre rule rasterizes the repair; the labelme rule draws the
            # outline as annotated, as Labelme does.
            log.debug("%s: repaired an invalid polygon with make_valid", where)
        return repaired
    if shape_type == "rectangle":
        (x0, y0), (x1, y1) = points
        return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if shape_type == "circle":
        (cx, cy), (px, py) = points
        return disc(cx, cy, math.hypot(px - cx, py - cy))
    if shape_type == "point":
        return disc(points[0, 0], points[0, 1], point_radius)
    if shape_type in ("line", "linestrip"):
        half = line_width / 2.0
        return LineString(points).buffer(
            half, quad_segs=disc_quad_segs(half), cap_style="flat", join_style="round"
        )
    assert patch is not None  # "mask", the only type left, always comes with its patch
    return _mask_geometry(patch, points)


def _decode_patch(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, str) or not value:
        raise _ShapeError(f"{where}: mask shape without a base64 PNG 'mask'")
    try:
        data = base64.b64decode(_DATA_URI.sub("", value, count=1), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            patch = np.asarray(image)
    except (binascii.Error, ValueError, OSError, SyntaxError) as error:
        raise _ShapeError(f"{where}: 'mask' cannot be decoded: {error}") from error
    if patch.ndim == 3:
        patch = patch.any(axis=2)
    return patch.astype(bool)


def _mask_geometry(patch: np.ndarray, points: np.ndarray) -> BaseGeometry:
    # Labelme pastes the patch at the rounded first corner; the patch size wins over the
    # (fractional) second corner.
    x0, y0 = (int(v) for v in np.round(points[0]))
    padded = np.zeros((patch.shape[0], patch.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = patch
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, stops = np.nonzero(step == -1)  # row-major order pairs each start with its stop
    if len(rows) == 0:
        return MultiPolygon()
    boxes = shapely.box(x0 + starts, y0 + rows, x0 + stops, y0 + rows + 1)
    return make_polygonal(shapely.union_all(boxes))


def _clip(
    geometry: BaseGeometry,
    points: np.ndarray,
    height: int,
    width: int,
    where: str,
    path: Path,
    index: int,
    problems: ProblemLog,
) -> BaseGeometry:
    """Clip to the image; report annotated points outside it.

    Only the annotated points are checked: a circle or a line band near the border may
    legitimately reach past it and is clipped without a report.
    """
    xs, ys = points[:, 0], points[:, 1]
    tol = EDGE_TOLERANCE
    outside = (xs < -tol) | (xs > width + tol) | (ys < -tol) | (ys > height + tol)
    minx, miny, maxx, maxy = geometry.bounds
    if minx >= 0 and miny >= 0 and maxx <= width and maxy <= height:
        return geometry
    clipped = make_polygonal(geometry.intersection(shapely.box(0, 0, width, height)))
    if clipped.is_empty or clipped.area <= 0:
        raise _ShapeError(f"{where}: wholly outside the {width}x{height} image")
    if outside.any():
        problems.report(
            path,
            f"shape {index}: {where}: {int(outside.sum())} point(s) outside the {width}x{height} "
            f"image (x {xs.min():g}..{xs.max():g}, y {ys.min():g}..{ys.max():g}); clipped",
            skipped="part outside the image",
        )
    return clipped
