"""Both rasterizing rules: the Labelme rule against Labelme's converter, the pixel-centre rule
against analytic areas, ties and shapely; unions and ignore regions for both."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from multitask_dr.datasets.labelme_rule import LabelmeDrawing, rasterize_labelme
from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry
from multitask_dr.datasets.rasterize import (
    IGNORE_CHANNEL,
)
from multitask_dr.lesions import IGNORE_INDEX
from tests.datasets.labelme_reference import shape_to_mask

#: Points each drawn shape type takes (``linestrip``/``polygon``: a range).
DRAWN_POINTS = {
    "polygon": (3, 12),
    "oriented_rectangle": (4, 4),
    "rectangle": (2, 2),
    "circle": (2, 2),
    "point": (1, 1),
    "line": (2, 2),
    "linestrip": (2, 6),
}


def _random_labelme_shapes(
    rng: np.random.Generator, count: int, height: int, width: int
) -> list[tuple[str, np.ndarray]]:
    """Every drawn type, from a pixel to a few hundred across, on, across and off the border,
    with integer, quarter-pixel, two-decimal and arbitrary float coordinates."""
    shapes = []
    types = list(DRAWN_POINTS)
    for i in range(count):
        shape_type = types[i % len(types)]
        low, high = DRAWN_POINTS[shape_type]
        n = int(rng.integers(low, high + 1))
        centre = rng.uniform(-20, 20, 2) + rng.uniform(0, 1, 2) * (width, height)
        points = centre + rng.normal(0, rng.choice([1.0, 6.0, 40.0, 150.0]), (n, 2))
        grid = i // len(types) % 4
        if grid < 3:
            points = np.round(points * (1, 4, 100)[grid]) / (1, 4, 100)[grid]
        shapes.append((shape_type, points))
    return shapes


@pytest.mark.parametrize(("height", "width", "count"), [(61, 83, 1400), (1100, 2048, 105)])
def test_labelme_rule_equals_labelmes_converter_shape_by_shape(
    height: int, width: int, count: int
) -> None:
    # The wide image puts columns past 1024, where PIL's float32 column arithmetic rounds
    # differently from small ones: a shifted canvas would move pixels there.
    rng = np.random.default_rng(height)
    shapes = _random_labelme_shapes(rng, count, height, width)
    union = np.zeros((height, width, 4), dtype=bool)
    painted = 0
    for i, (shape_type, points) in enumerate(shapes):
        expected = shape_to_mask(height, width, points.tolist(), shape_type)
        got = rasterize_labelme([LabelmeDrawing(0, shape_type, points)], height, width, 1)
        assert np.array_equal(got[..., 0] == 1, expected), (shape_type, points.tolist())
        union[..., i % 4] |= expected
        painted += int(expected.any())
    assert painted > 0.6 * count  # most shapes reach the image; some lie wholly off it
    # All at once: one canvas per channel gives the same union.
    drawings = [LabelmeDrawing(i % 4, t, p) for i, (t, p) in enumerate(shapes)]
    np.testing.assert_array_equal(rasterize_labelme(drawings, height, width, 4), union)


def test_labelme_rule_counts_every_pixel_the_outline_touches() -> None:
    square = np.array([[2, 2], [5, 2], [5, 5], [2, 5]], dtype=float)
    labelme = rasterize_labelme([LabelmeDrawing(0, "polygon", square)], 8, 8, 1)[..., 0]
    # Integer coordinates are pixel centres: columns and rows 2..5, 16 px; the pixel-centre
    # rule counts the area, 9 px.
    assert labelme.sum() == 16 and labelme[2:6, 2:6].all()
    assert rasterize_geometry(Polygon(square), 8, 8).sum() == 9
    corners = np.array([[5.9, 2.2], [2.7, 5.4]])  # PIL truncates: the same 16 px
    rectangle = rasterize_labelme([LabelmeDrawing(0, "rectangle", corners)], 8, 8, 1)
    np.testing.assert_array_equal(rectangle[..., 0], labelme)


def test_bow_tie_labelme_fills_both_lobes_as_labelme_does() -> None:
    bow_tie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float)
    mask = rasterize_labelme([LabelmeDrawing(0, "polygon", bow_tie)], 12, 12, 1)[..., 0] == 1
    np.testing.assert_array_equal(mask, shape_to_mask(12, 12, bow_tie.tolist(), "polygon"))
    # Both lobes (left and right triangles), as make_valid's repair keeps them.
    assert mask[:, :5].sum() >= 25 and mask[:, 6:].sum() >= 25
    repaired = rasterize_geometry(Polygon(bow_tie), 12, 12)
    assert repaired[:, :5].any() and repaired[:, 6:].any()


def test_outline_crossing_itself_stays_as_labelme_fills_it() -> None:
    # The outline of test_outline_crossing_itself_keeps_the_loop_filled: make_valid (the
    # pixel_centre rule) fills its 3x3 loop; PIL's even-odd fill, and so Labelme's mask and the
    # labelme rule, leave the loop's inside empty. The default follows Labelme.
    outline = np.array(
        [[0, 0], [10, 0], [10, 10], [4, 10], [4, 3], [7, 3], [7, 6], [2, 6], [2, 10], [0, 10]],
        dtype=float,
    )
    labelme = rasterize_labelme([LabelmeDrawing(0, "polygon", outline)], 12, 12, 1)[..., 0]
    np.testing.assert_array_equal(labelme == 1, shape_to_mask(12, 12, outline.tolist(), None))
    assert not labelme[4:6, 5:7].any() and labelme[3, 4:8].all()  # hollow loop, its outline
    assert rasterize_geometry(Polygon(outline), 12, 12)[3:6, 4:7].all()


def test_labelme_rule_unions_a_channel_and_ignore_wins_in_every_channel() -> None:
    a = np.array([[0, 0], [9, 0], [9, 9], [0, 9]], dtype=float)
    b = a + 5
    ignore = np.array([[4, 4], [6, 6]], dtype=float)
    shapes = [
        LabelmeDrawing(0, "polygon", a),
        LabelmeDrawing(0, "polygon", b),
        LabelmeDrawing(3, "polygon", a),
    ]
    for order in (
        [*shapes, LabelmeDrawing(IGNORE_CHANNEL, "rectangle", ignore)],
        [LabelmeDrawing(IGNORE_CHANNEL, "rectangle", ignore), *shapes],
    ):
        mask = rasterize_labelme(order, 16, 16, 4)
        assert (mask[4:7, 4:7] == IGNORE_INDEX).all()
        assert (mask == IGNORE_INDEX).sum() == 9 * 4
        assert (mask[..., 0] == 1).sum() == 100 + 100 - 25 - 9  # overlap kept once
        assert (mask[..., 3] == 1).sum() == 100 - 9 and not (mask[..., 1:3] == 1).any()


def test_labelme_mask_patch_is_pasted_at_the_rounded_corner_and_clipped() -> None:
    patch = np.ones((4, 5), dtype=bool)
    patch[1, 2] = False
    # round(-1.5) = -2 and round(2.5) = 2 (half to even, numpy's rounding, as Labelme's).
    corner = np.array([[-1.5, 2.5], [3.5, 6.5]])
    mask = rasterize_labelme([LabelmeDrawing(1, "mask", corner, patch)], 8, 8, 2)[..., 1]
    expected = np.zeros((8, 8), dtype=np.uint8)
    expected[2:6, 0:3] = patch[:, 2:]
    np.testing.assert_array_equal(mask, expected)


def test_labelme_rule_rejects_bad_input() -> None:
    square = np.array([[0, 0], [3, 3]], dtype=float)
    with pytest.raises(ValueError, match="channel 2"):
        rasterize_labelme([LabelmeDrawing(2, "rectangle", square)], 4, 4, 2)
    with pytest.raises(ValueError, match="shape_type 'ellipse'"):
        rasterize_labelme([LabelmeDrawing(0, "ellipse", square)], 4, 4, 1)
    with pytest.raises(ValueError, match="without points"):
        rasterize_labelme([LabelmeDrawing(0, "polygon", np.empty((0, 2)))], 4, 4, 1)
    with pytest.raises(ValueError, match="needs its patch"):
        rasterize_labelme([LabelmeDrawing(0, "mask", square)], 4, 4, 1)
    with pytest.raises(ValueError, match="whole number"):
        rasterize_labelme([LabelmeDrawing(0, "line", square)], 4, 4, 1, line_width=2.5)
    with pytest.raises(ValueError, match="positive"):
        rasterize_labelme([], 4, 0, 1)
    assert not rasterize_labelme([], 3, 4, 2).any()


def test_labelme_rule_keeps_columns_where_pil_rounds_them() -> None:
    # PIL's polygon filler adds the column coordinate in float32, which rounds differently past
    # column 1024 than near 0: a polygon drawn on a canvas shifted left loses or gains pixels.
    # The rule never shifts; this shows the shift would have been caught.
    rng = np.random.default_rng(7)
    height, width = 140, 2048
    moved = 0
    for _ in range(1200):
        vertices = int(rng.integers(3, 40))
        points = rng.uniform((1100, 50), (1950, 90)) + rng.normal(0, 20, (vertices, 2))
        expected = shape_to_mask(height, width, points.tolist(), "polygon")
        got = rasterize_labelme([LabelmeDrawing(0, "polygon", points)], height, width, 1)
        assert np.array_equal(got[..., 0] == 1, expected), points.tolist()
        offset = int(points[:, 0].min()) - 2  # a canvas cropped to the shape, shifted left
        shifted = shape_to_mask(height, width - offset, (points - (offset, 0)).tolist(), "polygon")
        moved += not np.array_equal(shifted, expected[:, offset:])
    assert moved > 0
