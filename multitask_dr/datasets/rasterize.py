"""Turn annotated shapes into pixel masks, by one of two rules.

Coordinates: ``x`` is the column, ``y`` the row, as in Labelme.

=================  ====================================  =====================================
rule               a pixel ``(row r, col c)`` is inside  choose it
=================  ====================================  =====================================
``labelme``        when Labelme's converter paints it:   Labelme JSON you train on and compare
(the default)      integer coordinates are pixel         with masks made from it (TJDR's
                   centres and every pixel the outline   release PNGs, ``labelme_export_json``):
                   touches is inside (PIL ``ImageDraw``  the masks are identical to Labelme's
                   with ``outline=1, fill=1``)           and the TJDR authors', pixel for pixel
``pixel_centre``   when its centre ``(c + .5, r + .5)``  geometry you want measured without
                   is inside the shape (top-left rule    bias: areas equal the shapes' areas
                   on ties); shapes are repaired by      (``[2, 5]^2`` is 9 px, not 16), as for
                   ``make_valid`` first                  shapes drawn in continuous coordinates
=================  ====================================  =====================================

**Labelme rule** (:func:`rasterize_labelme`): the same PIL calls Labelme's ``shape_to_mask``
makes, shape type by shape type: ``polygon`` and ``oriented_rectangle`` ``polygon(xy)``;
``rectangle`` ``rectangle`` of the sorted corners; ``circle`` ``ellipse`` of the square around
the centre with the centre-rim distance as radius; ``point`` the same with ``point_size``;
``line`` ``line(xy, width)`` and ``linestrip`` ``line(xy, width, joint="curve")`` (current
Labelme rounds a strip's turns; older releases, and the TJDR authors' copy of the converter,
left a notch there); ``mask`` patches pasted at ``round(points[0])``. PIL truncates
coordinates towards zero and ignores what falls off the canvas, which is how shapes past the
border are clipped. A self-intersecting outline is filled by PIL's even-odd scanline, as
Labelme fills it, not repaired: a bow-tie keeps both lobes either way, but a loop where an
outline winds round twice stays empty, as in the masks Labelme makes. Identical masks need the
same Pillow as the converter's (Pillow has changed its polygon filler before).

Speed, without changing a pixel: the shapes of one channel are drawn on one canvas in image
coordinates (a canvas per shape, as Labelme uses, costs a full-image copy each), and only the
windows around the shapes are copied into the output. Coordinates are never shifted: PIL's
polygon filler (also used for wide lines) adds the column coordinate in float32, so drawing a
polygon on a cropped, shifted canvas changed a pixel for 26 of 3000 random polygons (see
``test_labelme_rule_keeps_columns_where_pil_rounds_them``).

**Pixel-centre rule** (:func:`rasterize_shapes`, :func:`rasterize_geometry`): pixel ``(r, c)``
covers the unit square ``[c, c+1) x [r, r+1)`` and is inside a geometry when its centre is.
Ties (a centre exactly on an edge) follow the **top-left rule**: a centre on a left or top
edge is inside, one on a right or bottom edge is not, like the half-open pixel squares above.
The square ``[2.5, 5.5]^2`` therefore covers 9 pixels (its area), and two shapes sharing an
edge neither overlap nor leave a gap. Ties only occur when vertices sit on half-integer
coordinates; everywhere else the masks equal ``shapely.contains_xy`` at the pixel centres.
Implementation: one vectorised even-odd scanline pass over *all* shapes at once. Every polygon
edge is intersected with the pixel-centre rows it crosses, crossings are sorted per (polygon,
row), consecutive pairs become spans, and spans are written straight into the ``(H, W, C)``
output. It unions shapes of one channel (overlaps never cancel, unlike a single even-odd
``cv2.fillPoly`` call) and costs O(edges x rows + lesion pixels) instead of O(bbox area) per
shape; ``shapely.contains_xy`` on each bbox obeys the same rule but is ~10x slower.

Both rules union the shapes of one channel (overlapping lesions are both kept) and let ignore
regions (channel :data:`IGNORE_CHANNEL`) win in every channel. ``benchmarks/bench_rasterize.py``
times them against PIL and cv2 alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

import numpy as np
import shapely
from PIL import Image, ImageDraw
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from multitask_dr.lesions import IGNORE_INDEX

#: Channel value in :func:`rasterize_shapes` that marks an ignore region.
IGNORE_CHANNEL: Final[int] = -1

Method = Literal["scanline", "contains"]

#: How annotated shapes become pixels (see the module docstring); the same name is the
#: ``rasterize`` setting of the datasets and datamodules that read Labelme JSON.
RasterizeRule = Literal["labelme", "pixel_centre"]

#: Every :data:`RasterizeRule`, the default first.
RASTERIZE_RULES: Final[tuple[RasterizeRule, ...]] = ("labelme", "pixel_centre")

#: The rule used unless one is asked for: the masks Labelme's own converter makes.
DEFAULT_RASTERIZE: Final[RasterizeRule] = "labelme"

_POLYGON_TYPE_IDS: Final[tuple[int, int]] = (3, 6)  # shapely type ids of Polygon, MultiPolygon
_EMPTY: Final[MultiPolygon] = MultiPolygon()


def make_polygonal(geometry: BaseGeometry) -> Polygon | MultiPolygon:
    """Return the valid, polygonal part of a geometry.

    ``shapely.is_valid`` is checked first because ``shapely.make_valid`` is slow (~0.005 ms to
    confirm a valid polygon, 0.4-70 ms to repair one). Repair uses
    ``make_valid(method="structure", keep_collapsed=False)``: everything the outline encloses
    is kept, so a bow-tie becomes a MultiPolygon with both lobes at full area and a loop where a
    hand-drawn outline crosses itself stays filled. The default ``"linework"`` method punches a
    hole wherever an outline winds twice and was 14x slower on our synthetic lesions (5 ms vs
    0.36 ms per self-intersecting polygon). ``buffer(0)`` is never used: it silently drops a
    lobe. Collapsed parts (collinear vertices, spikes) have no area and are dropped, so a
    wholly degenerate polygon comes back empty.

    Args:
        geometry: Any shapely geometry.

    Returns:
        A valid Polygon or MultiPolygon, possibly empty.
    """
    if geometry.is_empty:
        return _EMPTY
    if not shapely.is_valid(geometry):
        geometry = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    parts = shapely.get_parts(geometry)
    polygons = [p for p in parts if isinstance(p, (Polygon, MultiPolygon)) and not p.is_empty]
    if not polygons:
        return _EMPTY
    if len(polygons) == 1:
        return polygons[0]
    # Parts of one make_valid result never overlap, so a union is only needed to flatten.
    return MultiPolygon(list(shapely.get_parts(polygons)))


def disc_quad_segs(radius: float, max_error: float = 0.1) -> int:
    """Segments per quarter circle so a buffered disc is within ``max_error`` px of round.

    Shapely approximates circles by inscribed polygons; a fixed count would be too coarse for
    large discs and wasteful for microaneurysms.

    Args:
        radius: Disc radius in pixels.
        max_error: Largest allowed gap between the polygon and the true circle, in pixels.

    Returns:
        The ``quad_segs`` argument for ``shapely.buffer`` (4 to 256).
    """
    if radius <= max_error:
        return 4
    sides = math.pi / math.acos(1.0 - max_error / radius)
    return int(min(max(math.ceil(sides / 4.0), 4), 256))


def disc(x: float, y: float, radius: float) -> Polygon:
    """A polygonal disc with the same area as the true circle.

    The inscribed polygon from a plain ``buffer`` loses ~0.7 % of the area at 0.1 px
    tolerance; scaling its radius so the polygon's area equals ``pi r^2`` keeps lesion areas
    unbiased, which matters for microaneurysms a few pixels across.

    Args:
        x: Centre column coordinate.
        y: Centre row coordinate.
        radius: Radius in pixels (``> 0``).

    Returns:
        The disc polygon (empty for a non-positive radius).
    """
    if not radius > 0:
        return Polygon()
    quad_segs = disc_quad_segs(radius)
    sides = 4 * quad_segs
    polygon_to_circle = sides * math.sin(2 * math.pi / sides) / (2 * math.pi)
    return shapely.Point(x, y).buffer(radius / math.sqrt(polygon_to_circle), quad_segs=quad_segs)


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got height={height}, width={width}")


def _scanline_spans(
    geometries: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal pixel runs covered by each geometry under the pixel-centre rule.

    Args:
        geometries: 1-D object array of valid Polygons / MultiPolygons.
        height: Mask height.
        width: Mask width.

    Returns:
        ``(start, length, owner)`` per run: flat index ``row * width + col`` of its first
        pixel, its length (``> 0``) and the index of the geometry it belongs to. Runs of
        different geometries may overlap.
    """
    empty = np.empty(0, np.int64)
    parts, part_owner = shapely.get_parts(geometries, return_index=True)
    if len(parts) == 0:
        return empty, empty, empty
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # Rings are closed, so consecutive coordinates of the same ring are exactly its edges.
    first_point = np.flatnonzero(coord_ring[:-1] == coord_ring[1:])
    x0, y0 = coords[first_point, 0], coords[first_point, 1]
    x1, y1 = coords[first_point + 1, 0], coords[first_point + 1, 1]
    # Half-open rows: an edge crosses pixel-centre row r when min(y) <= r + .5 < max(y). Each
    # closed ring then crosses every row an even number of times, vertices are counted once and
    # horizontal edges not at all (the top-left tie rule in y).
    row0 = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, height).astype(np.int64)
    row1 = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, height).astype(np.int64)
    count = row1 - row0
    crossing = count > 0
    if not crossing.any():
        return empty, empty, empty
    x0, y0, row0, count = x0[crossing], y0[crossing], row0[crossing], count[crossing]
    slope = (x1[crossing] - x0) / (y1[crossing] - y0)
    edge_part = ring_part[coord_ring[first_point[crossing]]]

    edge = np.repeat(np.arange(len(count)), count)
    row = np.arange(len(edge)) + np.repeat(row0 - (np.cumsum(count) - count), count)
    x = x0[edge] + (row + 0.5 - y0[edge]) * slope[edge]
    key = edge_part[edge] * height + row
    order = np.lexsort((x, key))
    x, key = x[order], key[order]
    # Even-odd: crossings of one (polygon part, row) pair up left to right into filled runs,
    # which also leaves holes empty.
    run_key = key[0::2]
    if not np.array_equal(run_key, key[1::2]):  # pragma: no cover - closed rings guarantee it
        raise AssertionError("unpaired scanline crossings: a ring is not closed")
    # Pixel c is in the run [xa, xb) when xa <= c + .5 < xb (the top-left tie rule in x).
    col0 = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)
    col1 = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
    length = col1 - col0
    filled = length > 0
    run_part = run_key[filled] // height
    run_row = run_key[filled] - run_part * height
    return run_row * width + col0[filled], length[filled], part_owner[run_part]


def _expand_runs(start: np.ndarray, length: np.ndarray, step: int = 1) -> np.ndarray:
    """Indices ``start + k * step`` for ``k < length`` of every run, concatenated."""
    total = int(length.sum())
    # One repeat and one arange: the fewest full-size passes for a ragged range.
    offset = start - (np.cumsum(length) - length) * step
    return np.repeat(offset, length) + np.arange(0, total * step, step, dtype=np.int64)


def _contains_mask(geometry: BaseGeometry, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    if geometry.is_empty:
        return mask
    minx, miny, maxx, maxy = geometry.bounds
    c0, c1 = max(int(np.floor(minx)), 0), min(int(np.ceil(maxx)), width)
    r0, r1 = max(int(np.floor(miny)), 0), min(int(np.ceil(maxy)), height)
    if c0 >= c1 or r0 >= r1:
        return mask
    cols, rows = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    mask[r0:r1, c0:c1] = shapely.contains_xy(geometry, cols, rows)
    return mask


def _prepare(geometries: Sequence[BaseGeometry], validate: bool) -> np.ndarray:
    array = np.empty(len(geometries), dtype=object)
    array[:] = list(geometries)
    if len(array) == 0:
        return array
    if not shapely.is_geometry(array).all():
        raise TypeError("rasterize: every shape must be a shapely geometry")
    coords = shapely.get_coordinates(array)
    if not np.isfinite(coords).all():
        raise ValueError("rasterize: geometry has NaN or infinite coordinates")
    if validate:
        # Vectorised checks keep the common case (all valid polygons) at ~1 us per shape.
        ok = np.isin(shapely.get_type_id(array), _POLYGON_TYPE_IDS) & shapely.is_valid(array)
        for i in np.flatnonzero(~ok):
            array[i] = make_polygonal(array[i])
    return array


def rasterize_geometry(
    geometry: BaseGeometry,
    height: int,
    width: int,
    *,
    method: Method = "scanline",
) -> np.ndarray:
    """Rasterize one (multi)polygon with the pixel-centre rule.

    Args:
        geometry: A Polygon or MultiPolygon in pixel coordinates (holes are kept). Invalid
            polygons are repaired with :func:`make_polygonal`; lines and points have no area
            and give an empty mask.
        height: Mask height in pixels.
        width: Mask width in pixels.
        method: ``"scanline"`` (fast, the default) or ``"contains"`` (``shapely.contains_xy``
            on the bounding box: the slow reference, which excludes boundary ties instead of
            applying the top-left rule).

    Returns:
        A ``(height, width)`` boolean mask.

    Raises:
        ValueError: On a non-positive size, non-finite coordinates or an unknown method.
    """
    _check_size(height, width)
    (prepared,) = _prepare([geometry], validate=True)
    if method == "contains":
        return _contains_mask(prepared, height, width)
    if method != "scanline":
        raise ValueError(f"unknown rasterize method {method!r}; use 'scanline' or 'contains'")
    mask = np.zeros(height * width, dtype=bool)
    start, length, _ = _scanline_spans(np.array([prepared], dtype=object), height, width)
    mask[_expand_runs(start, length)] = True
    return mask.reshape(height, width)


def rasterize_shapes(
    shapes: Sequence[tuple[int, BaseGeometry]],
    height: int,
    width: int,
    num_channels: int,
    *,
    validate: bool = True,
    method: Method = "scanline",
) -> np.ndarray:
    """Rasterize labelled shapes into a multi-channel mask.

    Shapes of the same channel are unioned (overlaps never cancel); channels are independent,
    so one pixel may hold several lesions. Shapes on channel :data:`IGNORE_CHANNEL` (``-1``)
    set :data:`~multitask_dr.lesions.IGNORE_INDEX` in *every* channel, applied after all
    lesions, so an ignore region always wins.

    Args:
        shapes: ``(channel, geometry)`` pairs; ``channel`` in ``[0, num_channels)`` or ``-1``.
        height: Mask height in pixels.
        width: Mask width in pixels.
        num_channels: Number of output channels.
        validate: Repair invalid or non-polygonal geometries with :func:`make_polygonal`
            (costs ~1 us per valid shape). Pass ``False`` only for geometries that already went
            through it, e.g. those from :func:`multitask_dr.datasets.labelme.read_labelme`.
        method: ``"scanline"`` (default) or ``"contains"`` (slow reference).

    Returns:
        ``(height, width, num_channels)`` uint8 array of 0, 1 and ``IGNORE_INDEX``.

    Raises:
        ValueError: On a channel out of range, a non-positive size, non-finite coordinates or
            an unknown method.
    """
    _check_size(height, width)
    if num_channels <= 0:
        raise ValueError(f"num_channels must be positive, got {num_channels}")
    out = np.zeros((height, width, num_channels), dtype=np.uint8)
    if not shapes:
        return out
    channels = np.array([channel for channel, _ in shapes], dtype=np.int64)
    bad = (channels < IGNORE_CHANNEL) | (channels >= num_channels)
    if bad.any():
        raise ValueError(
            f"rasterize_shapes: channel {int(channels[bad][0])} is outside [0, {num_channels}) "
            f"and is not the ignore channel {IGNORE_CHANNEL}"
        )
    geometries = _prepare([geometry for _, geometry in shapes], validate)

    if method == "contains":
        ignore = np.zeros((height, width), dtype=bool)
        for channel, geometry in zip(channels, geometries, strict=True):
            covered = _contains_mask(geometry, height, width)
            if channel == IGNORE_CHANNEL:
                ignore |= covered
            else:
                out[..., channel] |= covered
        out[ignore] = IGNORE_INDEX
        return out
    if method != "scanline":
        raise ValueError(f"unknown rasterize method {method!r}; use 'scanline' or 'contains'")

    start, length, owner = _scanline_spans(geometries, height, width)
    run_channel = channels[owner]
    ignore = run_channel == IGNORE_CHANNEL
    lesion = ~ignore
    # Write straight into the channel-last layout: no per-channel planes to transpose.
    first = start[lesion] * num_channels + run_channel[lesion]
    out.reshape(-1)[_expand_runs(first, length[lesion], step=num_channels)] = 1
    out.reshape(-1, num_channels)[_expand_runs(start[ignore], length[ignore])] = IGNORE_INDEX
    return out


# --------------------------------------------------------------------------------------------
# The Labelme rule


class LabelmeDrawing(NamedTuple):
    """One Labelme shape, as :func:`rasterize_labelme` draws it.

    Attributes:
        channel: Output channel, or :data:`IGNORE_CHANNEL` for an ignore region.
        shape_type: Labelme's ``shape_type`` (``"polygon"`` for files without one) or
            ``"mask"``.
        points: ``(N, 2)`` coordinates ``(x, y)`` exactly as in the file: no clipping, no
            repair (Labelme draws what was annotated).
        patch: For ``mask`` shapes the boolean patch, pasted with its top-left pixel at
            ``round(points[0])``; ``None`` otherwise.
    """

    channel: int
    shape_type: str
    points: np.ndarray
    patch: np.ndarray | None = None


def check_rule(rule: str) -> RasterizeRule:
    """Return ``rule`` if it is a :data:`RasterizeRule`, for settings read from YAML.

    Raises:
        ValueError: Naming the known rules.
    """
    if rule not in RASTERIZE_RULES:
        known = ", ".join(RASTERIZE_RULES)
        raise ValueError(f"unknown rasterize rule {rule!r}; use one of {known}")
    return rule  # type: ignore[return-value]


def _pil_width(line_width: float) -> int:
    # PIL takes a whole number of pixels; Labelme passes its default, the int 10.
    if not (float(line_width).is_integer() and line_width >= 1):
        raise ValueError(
            f"the labelme rule draws lines a whole number of pixels wide, not {line_width}"
        )
    return int(line_width)


#: Shape types the Labelme rule draws (``mask`` shapes are pasted patches instead).
LABELME_DRAWN: Final[frozenset[str]] = frozenset(
    {"polygon", "oriented_rectangle", "rectangle", "circle", "point", "line", "linestrip"}
)


#: What one read out of a PIL canvas costs besides its pixels, in pixels (~30 us at ~2 ns a
#: pixel, measured): how :func:`rasterize_labelme` decides between one read over all of a
#: channel's shapes and one read per shape. It changes the speed only, never a pixel.
_READ_COST_PX: Final[int] = 15_000


def draw_labelme(
    draw: ImageDraw.ImageDraw,
    shape_type: str,
    points: np.ndarray,
    *,
    point_size: float = 5.0,
    line_width: int = 10,
) -> None:
    """Paint one shape with ink 1, making the PIL call Labelme's ``shape_to_mask`` makes.

    Args:
        draw: Where to paint (a mode ``L`` canvas in image coordinates).
        shape_type: ``polygon``, ``oriented_rectangle``, ``rectangle``, ``circle``, ``point``,
            ``line`` or ``linestrip``.
        points: ``(N, 2)`` file coordinates.
        point_size: Radius of a ``point``.
        line_width: Width of ``line``/``linestrip`` in whole pixels.

    Raises:
        ValueError: On an unknown shape type.
    """
    # Python floats, as Labelme hands them to PIL. PIL flattens tuples and flat lists into the
    # same coordinates; the flat list is cheaper for long outlines.
    if shape_type in ("polygon", "oriented_rectangle"):
        draw.polygon(points.ravel().tolist(), outline=1, fill=1)
    elif shape_type == "circle":
        (cx, cy), (px, py) = points.tolist()
        radius = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=1, fill=1)
    elif shape_type == "point":
        ((cx, cy),) = points.tolist()
        r = point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif shape_type == "rectangle":
        (x0, y0), (x1, y1) = points.tolist()
        corners = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        draw.rectangle(corners, outline=1, fill=1)
    elif shape_type == "line":
        draw.line(points.ravel().tolist(), fill=1, width=line_width)
    elif shape_type == "linestrip":
        # The curved joints are computed in Python from the points: give them Labelme's tuples.
        xy = [tuple(p) for p in points.tolist()]
        draw.line(xy, fill=1, width=line_width, joint="curve")
    else:
        raise ValueError(f"the labelme rule cannot draw shape_type {shape_type!r}")


def _windows(
    items: Sequence[tuple[str, np.ndarray]],
    height: int,
    width: int,
    point_size: float,
    line_width: int,
) -> np.ndarray:
    """``(n, 4)`` rows and columns ``r0, r1, c0, c1`` holding every pixel PIL may paint.

    Generous by a pixel or two (PIL truncates coordinates, lines reach half their width past
    their points), clipped to the image: empty (``r1 <= r0`` or ``c1 <= c0``) for a shape that
    paints nothing on it. Computed for all shapes at once, as per-shape numpy calls cost more
    than drawing.
    """
    counts = np.array([len(points) for _, points in items])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    coords = np.concatenate([points for _, points in items])
    low = np.minimum.reduceat(coords, starts, axis=0)
    high = np.maximum.reduceat(coords, starts, axis=0)
    types = [shape_type for shape_type, _ in items]
    pad = np.full(len(items), 2)
    pad[[t in ("line", "linestrip") for t in types]] += line_width // 2
    circle = np.array([t == "circle" for t in types])
    point = np.array([t == "point" for t in types])
    if circle.any() or point.any():
        centre = coords[starts]
        radius = np.zeros(len(items))
        rim = coords[np.minimum(starts + 1, len(coords) - 1)]
        radius[circle] = np.hypot(*(rim[circle] - centre[circle]).T)
        radius[point] = point_size
        round_ = circle | point
        low[round_] = centre[round_] - radius[round_, None]
        high[round_] = centre[round_] + radius[round_, None]
    first = np.floor(low).astype(np.int64) - pad[:, None]
    last = np.floor(high).astype(np.int64) + pad[:, None] + 1
    return np.stack(
        [
            np.maximum(first[:, 1], 0),
            np.minimum(last[:, 1], height),
            np.maximum(first[:, 0], 0),
            np.minimum(last[:, 0], width),
        ],
        axis=1,
    )


def _read_windows(canvas: Image.Image, windows: np.ndarray) -> list[np.ndarray]:
    """The canvas's pixels in each window, read in one crop or one per window, as is cheaper."""
    r0, c0 = windows[:, 0].min(), windows[:, 2].min()
    r1, c1 = windows[:, 1].max(), windows[:, 3].max()
    areas = (windows[:, 1] - windows[:, 0]) * (windows[:, 3] - windows[:, 2])
    if (r1 - r0) * (c1 - c0) <= areas.sum() + len(windows) * _READ_COST_PX:
        union = np.asarray(canvas.crop((int(c0), int(r0), int(c1), int(r1))))
        return [union[a - r0 : b - r0, c - c0 : d - c0] for a, b, c, d in windows.tolist()]
    return [np.asarray(canvas.crop((c, a, d, b))) for a, b, c, d in windows.tolist()]


def _patch_block(
    points: np.ndarray, patch: np.ndarray, height: int, width: int
) -> tuple[int, int, np.ndarray] | None:
    # Labelme rounds the first corner half to even (numpy's round) and clips the patch.
    x0, y0 = (int(v) for v in np.round(np.asarray(points, dtype=np.float64)[0]))
    row0, col0 = max(y0, 0), max(x0, 0)
    row1, col1 = min(y0 + patch.shape[0], height), min(x0 + patch.shape[1], width)
    if row1 <= row0 or col1 <= col0:
        return None
    return row0, col0, patch[row0 - y0 : row1 - y0, col0 - x0 : col1 - x0].astype(np.uint8)


def rasterize_labelme(
    shapes: Sequence[LabelmeDrawing],
    height: int,
    width: int,
    num_channels: int,
    *,
    point_size: float = 5.0,
    line_width: float = 10,
) -> np.ndarray:
    """Rasterize Labelme shapes exactly as Labelme's converter does, into a multi-channel mask.

    Each shape's pixels are those of Labelme's ``shape_to_mask`` (``mask`` shapes: their patch);
    shapes of one channel are unioned, and ignore regions (channel :data:`IGNORE_CHANNEL`) set
    :data:`~multitask_dr.lesions.IGNORE_INDEX` in every channel after all lesions.

    Args:
        shapes: The shapes, already checked (types and point counts) as
            :func:`multitask_dr.datasets.labelme.read_labelme` does.
        height: Mask height in pixels.
        width: Mask width in pixels.
        num_channels: Number of output channels.
        point_size: Radius of a ``point`` (Labelme: 5).
        line_width: Width of ``line``/``linestrip`` in whole pixels (Labelme: 10).

    Returns:
        ``(height, width, num_channels)`` uint8 array of 0, 1 and ``IGNORE_INDEX``.

    Raises:
        ValueError: On a channel out of range, a non-positive size, an unknown shape type, a
            ``mask`` shape without a patch or a fractional line width.
    """
    _check_size(height, width)
    if num_channels <= 0:
        raise ValueError(f"num_channels must be positive, got {num_channels}")
    pixels = _pil_width(line_width)
    out = np.zeros((height, width, num_channels), dtype=np.uint8)
    # One canvas per channel in image coordinates, with the file's coordinates untouched: PIL
    # adds column coordinates in float32, so drawing shifted (on a cropped canvas) can move a
    # pixel. Only the windows around the shapes are read back; a canvas ends at the
    # bottom-right of its windows, which only drops pixels PIL would paint outside them.
    drawn: dict[int, list[tuple[str, np.ndarray]]] = {}
    patches: list[tuple[int, tuple[int, int, np.ndarray]]] = []
    for shape in shapes:
        if not IGNORE_CHANNEL <= shape.channel < num_channels:
            raise ValueError(
                f"rasterize_labelme: channel {shape.channel} is outside [0, {num_channels}) "
                f"and is not the ignore channel {IGNORE_CHANNEL}"
            )
        points = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
        if not len(points):
            raise ValueError(f"rasterize_labelme: a {shape.shape_type!r} shape without points")
        if shape.shape_type in LABELME_DRAWN:
            drawn.setdefault(shape.channel, []).append((shape.shape_type, points))
        elif shape.shape_type != "mask":
            raise ValueError(f"the labelme rule cannot draw shape_type {shape.shape_type!r}")
        elif shape.patch is None:
            raise ValueError("rasterize_labelme: a 'mask' shape needs its patch")
        else:
            block = _patch_block(points, shape.patch, height, width)
            if block is not None:
                patches.append((shape.channel, block))

    ignored: list[tuple[int, int, np.ndarray]] = []  # (row, col, block), applied last
    for channel, items in drawn.items():
        windows = _windows(items, height, width, point_size, pixels)
        on_image = (windows[:, 1] > windows[:, 0]) & (windows[:, 3] > windows[:, 2])
        if not on_image.any():
            continue
        windows = windows[on_image]
        canvas = Image.new("L", (int(windows[:, 3].max()), int(windows[:, 1].max())))
        draw = ImageDraw.Draw(canvas)
        for (shape_type, points), keep in zip(items, on_image, strict=True):
            if keep:
                draw_labelme(draw, shape_type, points, point_size=point_size, line_width=pixels)
        blocks = _read_windows(canvas, windows)
        for (r0, r1, c0, c1), block in zip(windows.tolist(), blocks, strict=True):
            if channel == IGNORE_CHANNEL:
                ignored.append((r0, c0, block))
            else:
                # The canvas is the channel's union: overlapping windows copy the same values.
                out[r0:r1, c0:c1, channel] = block
    for channel, (row, col, block) in patches:
        if channel == IGNORE_CHANNEL:
            ignored.append((row, col, block))
            continue
        view = out[row : row + block.shape[0], col : col + block.shape[1], channel]
        np.bitwise_or(view, block, out=view)
    for row, col, block in ignored:
        out[row : row + block.shape[0], col : col + block.shape[1]][block != 0] = IGNORE_INDEX
    return out
