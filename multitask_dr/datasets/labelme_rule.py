"""The ``labelme`` rule: masks exactly as Labelme's own converter paints them.

:func:`rasterize_labelme` makes the PIL calls Labelme's ``shape_to_mask`` makes, shape type
by shape type: ``polygon`` and ``oriented_rectangle`` ``polygon(xy)``;
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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from multitask_dr.datasets.rasterize import IGNORE_CHANNEL, check_size
from multitask_dr.lesions import IGNORE_INDEX


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
    check_size(height, width)
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
