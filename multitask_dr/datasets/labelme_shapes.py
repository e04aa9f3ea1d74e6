"""One Labelme shape: parsed from its JSON object into an area, and written back as one.

How each ``shape_type`` becomes an area is described in :mod:`multitask_dr.datasets.labelme`;
:func:`parse_shape` does it for one shape and :func:`labelme_shape_dict` writes the JSON object
Labelme 5.x stores for one.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from PIL import Image
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.datasets.rasterize import disc, disc_quad_segs, make_polygonal
from multitask_dr.lesions import (
    IGNORE_LABELS,
    IGNORE_TARGET,
    SKIP_TARGET,
)

log = logging.getLogger(__name__)

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

DATA_URI: Final[re.Pattern[str]] = re.compile(r"^data:[^,]*;base64,")
IGNORE_KEYS: Final[frozenset[str]] = frozenset(label.strip().lower() for label in IGNORE_LABELS)


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


class SkippedShape(Exception):
    """A shape whose label ``label_map`` sends to ``none``, or that it does not know."""

    def __init__(self, label: str, known: bool) -> None:
        super().__init__(label)
        self.label = label
        self.known = known


class ShapeError(Exception):
    """A shape-level fault; carries what lenient mode skips."""

    def __init__(self, reason: str, skipped: str = "shape") -> None:
        super().__init__(reason)
        self.reason = reason
        self.skipped = skipped


def parse_shape(
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
    """Parse the shape at ``index`` of a Labelme file into an area, clipped to the image.

    Raises:
        SkippedShape: For a label ``table`` sends to ``none`` or does not know.
        ShapeError: For a shape-level fault (lenient mode skips the shape).
    """
    if not isinstance(raw, dict):
        raise ShapeError(f"not a JSON object but {type(raw).__name__}")
    label = raw.get("label")
    if not isinstance(label, str):
        raise ShapeError(f"missing or non-text 'label' ({label!r})")
    key = label.strip().lower()
    shape_type = raw.get("shape_type")
    shape_type = "polygon" if shape_type is None else shape_type  # the 2018 format has none
    where = f"{label!r} ({shape_type})"
    target = IGNORE_TARGET if key in IGNORE_KEYS else table.get(key)
    if target is None or target == SKIP_TARGET:
        raise SkippedShape(label, known=target is not None)
    lesion = None if target == IGNORE_TARGET else target
    if not isinstance(shape_type, str) or shape_type not in SHAPE_POINTS:
        raise ShapeError(
            f"{where}: unknown shape_type {shape_type!r} (known: {', '.join(SHAPE_POINTS)})"
        )
    points = _parse_points(raw.get("points"), where)
    low, high = SHAPE_POINTS[shape_type]
    if len(points) < low or (high is not None and len(points) > high):
        wanted = f"{low}" if low == high else f"at least {low}" if high is None else f"{low}-{high}"
        raise ShapeError(f"{where}: needs {wanted} point(s), got {len(points)}")

    patch = _decode_patch(raw.get("mask"), where) if shape_type == "mask" else None
    geometry = _geometry(shape_type, points, patch, point_radius, line_width, where)
    if geometry.is_empty or geometry.area <= 0:
        raise ShapeError(f"{where}: degenerate shape with zero area (collinear/repeated points)")
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
        raise ShapeError(f"{where}: 'points' must be a list of [x, y] numbers")
    points = np.asarray(value, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ShapeError(f"{where}: NaN or infinite coordinates")
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
        raise ShapeError(f"{where}: mask shape without a base64 PNG 'mask'")
    try:
        data = base64.b64decode(DATA_URI.sub("", value, count=1), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            patch = np.asarray(image)
    except (binascii.Error, ValueError, OSError, SyntaxError) as error:
        raise ShapeError(f"{where}: 'mask' cannot be decoded: {error}") from error
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
        raise ShapeError(f"{where}: wholly outside the {width}x{height} image")
    if outside.any():
        problems.report(
            path,
            f"shape {index}: {where}: {int(outside.sum())} point(s) outside the {width}x{height} "
            f"image (x {xs.min():g}..{xs.max():g}, y {ys.min():g}..{ys.max():g}); clipped",
            skipped="part outside the image",
        )
    return clipped


def labelme_shape_dict(label: str, points: list[list[float]], shape_type: str) -> dict[str, object]:
    """One shape as Labelme 5.x writes it (no group, description, flags or mask patch).

    Args:
        label: The shape's label.
        points: Its points, ``[x, y]`` each, as :func:`parse_shape` reads them.
        shape_type: ``polygon``, ``circle`` (centre and rim point), ...

    Returns:
        The JSON object.
    """
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }
