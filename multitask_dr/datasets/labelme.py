"""Read Labelme JSON annotations into shapely geometries and lesion masks (and write them).

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

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from multitask_dr.datasets.labelme_image import annotation_size, find_image, read_image_data
from multitask_dr.datasets.labelme_rule import LabelmeDrawing, rasterize_labelme
from multitask_dr.datasets.labelme_shapes import LabelmeShape, ShapeError, SkippedShape, parse_shape
from multitask_dr.datasets.pixel_centre_rule import rasterize_shapes
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.datasets.rasterize import (
    DEFAULT_RASTERIZE,
    IGNORE_CHANNEL,
    RasterizeRule,
    check_rule,
)
from multitask_dr.lesions import (
    DEFAULT_LABEL_MAP,
    IGNORE_TARGET,
    LESIONS,
    NUM_LESIONS,
    SKIP_TARGET,
)

log = logging.getLogger(__name__)

#: Labelme version string written into the JSON files.
LABELME_VERSION: Final[str] = "5.7.0"


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

    image_data, embedded_size = read_image_data(path, data.get("imageData"), problems)
    image_path = find_image(path, data.get("imagePath"))
    height, width = annotation_size(path, data, embedded_size, image_path, problems)

    shapes: list[LabelmeShape] = []
    unknown: Counter[str] = Counter()
    first_unknown: dict[str, int] = {}
    for index, raw in enumerate(data["shapes"]):
        try:
            shape = parse_shape(
                raw, index, table, height, width, point_radius, line_width, path, problems
            )
        except SkippedShape as skipped:
            if not skipped.known:
                unknown[skipped.label] += 1
                first_unknown.setdefault(skipped.label, index)
            continue
        except ShapeError as error:
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


def labelme_document(
    shapes: list[dict[str, object]], image_name: str, height: int, width: int
) -> dict[str, object]:
    """A Labelme 5.x JSON document (``imageData`` null: the image is the file beside it).

    Args:
        shapes: Shape objects (:func:`~multitask_dr.datasets.labelme_shapes.labelme_shape_dict`).
        image_name: The image's file name, relative to the JSON.
        height: Image height.
        width: Image width.

    Returns:
        The document :func:`read_labelme` reads back.
    """
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_labelme(path: Path, document: dict[str, object]) -> None:
    """Write a Labelme document as Labelme does (2-space indent), ending in a newline."""
    path.write_text(json.dumps(document, indent=2) + "\n")
