"""Both rasterizing rules: the Labelme rule against Labelme's converter, the pixel-centre rule
against analytic areas, ties and shapely; unions and ignore regions for both."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from multitask_dr.datasets.labelme_rule import LabelmeDrawing, rasterize_labelme
from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry, rasterize_shapes
from multitask_dr.datasets.rasterize import (
    IGNORE_CHANNEL,
    RASTERIZE_RULES,
    check_rule,
    disc,
    disc_quad_segs,
    make_polygonal,
)
from multitask_dr.lesions import IGNORE_INDEX
from tests.datasets.labelme_reference import shape_to_mask

METHODS = ("scanline", "contains")


@pytest.mark.parametrize("method", METHODS)
def test_square_covers_exactly_its_pixels(method: str) -> None:
    mask = rasterize_geometry(box(2, 2, 5, 5), 8, 8, method=method)
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:5, 2:5] = True
    np.testing.assert_array_equal(mask, expected)


def test_half_integer_square_uses_top_left_rule() -> None:
    # Centres 2.5, 3.5, 4.5 lie on the left/top edges (in) and 5.5 on the right/bottom (out).
    mask = rasterize_geometry(box(2.5, 2.5, 5.5, 5.5), 8, 8)
    assert mask.sum() == 9
    assert mask[2:5, 2:5].all()
    # The reference excludes every boundary centre, so it keeps only the strict interior.
    assert rasterize_geometry(box(2.5, 2.5, 5.5, 5.5), 8, 8, method="contains").sum() == 4


def test_shapes_sharing_an_edge_tile_without_gap_or_overlap() -> None:
    left = Polygon([(0.5, 0.5), (4.5, 0.5), (6.5, 9.5), (0.5, 9.5)])
    right = Polygon([(4.5, 0.5), (11.5, 0.5), (11.5, 9.5), (6.5, 9.5)])
    mask = rasterize_shapes([(0, left), (1, right)], 12, 12, 2)
    union = rasterize_geometry(box(0.5, 0.5, 11.5, 9.5), 12, 12)
    np.testing.assert_array_equal((mask.sum(axis=2) > 0), union)
    assert mask.sum(axis=2).max() == 1  # no pixel in both


@pytest.mark.parametrize("radius", [3.0, 20.0, 57.3])
def test_disc_area_within_one_percent(radius: float) -> None:
    geometry = disc(64.3, 64.7, radius)
    assert geometry.area == pytest.approx(math.pi * radius**2, rel=1e-9)
    pixels = rasterize_geometry(geometry, 130, 130).sum()
    tolerance = 0.01 if radius >= 20 else 0.05  # sampling error shrinks like 1/r
    assert pixels == pytest.approx(math.pi * radius**2, rel=tolerance)


def test_disc_quad_segs_grows_with_radius() -> None:
    assert disc_quad_segs(0.05) == 4
    assert disc_quad_segs(2) <= disc_quad_segs(20) <= disc_quad_segs(2000) <= 256
    radius = 500.0
    sides = 4 * disc_quad_segs(radius)
    assert radius * (1 - math.cos(math.pi / sides)) <= 0.1 + 1e-9
    assert disc(0, 0, 0).is_empty


@pytest.mark.parametrize("method", METHODS)
def test_polygon_with_hole_is_outer_minus_inner(method: str) -> None:
    ring = Polygon(
        [(0, 0), (20, 0), (20, 20), (0, 20)], holes=[[(5, 5), (15, 5), (15, 15), (5, 15)]]
    )
    mask = rasterize_geometry(ring, 24, 24, method=method)
    assert mask.sum() == 400 - 100
    assert not mask[5:15, 5:15].any()


def test_bow_tie_keeps_both_lobes() -> None:
    bow_tie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    assert not bow_tie.is_valid
    repaired = make_polygonal(bow_tie)
    assert repaired.geom_type == "MultiPolygon"
    assert len(repaired.geoms) == 2
    assert repaired.area == pytest.approx(50.0)
    mask = rasterize_geometry(bow_tie, 12, 12)
    # Both lobes are there (buffer(0) would drop one). Their diagonals run through pixel
    # centres, and the top-left tie rule splits them 20/30 but keeps the total exactly 50.
    assert mask[:, :5].sum() >= 15 and mask[:, 5:].sum() >= 15
    assert mask.sum() == 50


def test_outline_crossing_itself_keeps_the_loop_filled() -> None:
    # The outline dips in, draws a 3x3 loop that crosses its own path at (4, 6) and leaves
    # through a 2x4 notch. Everything it encloses is lesion: 100 - 8 (the notch) = 92. The
    # "linework" repair would also punch out the loop (83).
    outline = Polygon(
        [(0, 0), (10, 0), (10, 10), (4, 10), (4, 3), (7, 3), (7, 6), (2, 6), (2, 10), (0, 10)]
    )
    assert not outline.is_valid
    repaired = make_polygonal(outline)
    assert repaired.area == pytest.approx(92.0)
    mask = rasterize_geometry(outline, 12, 12)
    assert mask.sum() == 92 and mask[3:6, 4:7].all() and not mask[6:10, 2:4].any()


def test_make_polygonal_leaves_valid_geometries_alone() -> None:
    square = box(0, 0, 3, 3)
    assert make_polygonal(square) is square


@pytest.mark.parametrize(
    "geometry",
    [
        Polygon([(0, 0), (1, 1), (2, 2)]),  # collinear: make_valid gives a line
        LineString([(0, 0), (5, 5)]),
        Point(3, 3),
        Polygon(),
    ],
)
def test_geometries_without_area_rasterize_empty(geometry: shapely.Geometry) -> None:
    assert make_polygonal(geometry).is_empty
    assert not rasterize_geometry(geometry, 8, 8).any()


def test_geometry_partly_outside_is_clipped() -> None:
    mask = rasterize_geometry(box(-5, -5, 3, 4), 10, 10)
    assert mask.sum() == 3 * 4
    assert not rasterize_geometry(box(20, 20, 30, 30), 10, 10).any()


def test_multipolygon() -> None:
    geometry = MultiPolygon([box(0, 0, 2, 2), box(5, 5, 8, 8)])
    assert rasterize_geometry(geometry, 10, 10).sum() == 4 + 9


def test_rasterize_shapes_unions_overlaps_of_one_channel() -> None:
    shapes = [(0, box(0, 0, 10, 10)), (0, box(5, 5, 15, 15)), (2, box(0, 0, 3, 3))]
    mask = rasterize_shapes(shapes, 16, 16, 4)
    assert mask.shape == (16, 16, 4)
    assert mask.dtype == np.uint8
    assert (mask[..., 0] == 1).sum() == 100 + 100 - 25  # the overlap is not cancelled
    assert mask[7, 7, 0] == 1
    assert (mask[..., 2] == 1).sum() == 9
    assert not mask[..., 1].any() and not mask[..., 3].any()


def test_ignore_channel_wins_in_every_channel_whatever_the_order() -> None:
    ignore = (IGNORE_CHANNEL, box(4, 4, 6, 6))
    lesions = [(0, box(0, 0, 10, 10)), (3, box(5, 5, 8, 8))]
    for shapes in ([ignore, *lesions], [*lesions, ignore]):
        mask = rasterize_shapes(shapes, 12, 12, 4)
        assert (mask[4:6, 4:6] == IGNORE_INDEX).all()
        assert (mask == IGNORE_INDEX).sum() == 4 * 4
        assert (mask[..., 0] == 1).sum() == 100 - 4
        assert (mask[..., 3] == 1).sum() == 9 - 1
        assert set(np.unique(mask)) == {0, 1, IGNORE_INDEX}


def test_rasterize_shapes_validates_by_default() -> None:
    bow_tie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    mask = rasterize_shapes([(1, bow_tie)], 12, 12, 2)
    np.testing.assert_array_equal(mask[..., 1].astype(bool), rasterize_geometry(bow_tie, 12, 12))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_rasterize_shapes_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="channel 4"):
        rasterize_shapes([(4, box(0, 0, 1, 1))], 4, 4, 4)
    with pytest.raises(ValueError, match="channel -2"):
        rasterize_shapes([(-2, box(0, 0, 1, 1))], 4, 4, 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        rasterize_shapes([(0, Polygon([(0, 0), (np.nan, 1), (1, 1)]))], 4, 4, 1)
    with pytest.raises(ValueError, match="positive"):
        rasterize_shapes([], 0, 4, 1)
    with pytest.raises(ValueError, match="unknown rasterize method"):
        rasterize_geometry(box(0, 0, 1, 1), 4, 4, method="cv2")  # type: ignore[arg-type]
    assert not rasterize_shapes([], 3, 4, 2).any()


def _random_polygons(
    rng: np.random.Generator, count: int, size: int, grid: float | None
) -> list[Polygon]:
    """Star-shaped polygons, a third with shuffled vertices (self-intersecting)."""
    polygons = []
    for i in range(count):
        n = int(rng.integers(3, 30))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        if i % 3 == 0:
            rng.shuffle(angles)
        radii = rng.uniform(1.5, 40) * rng.uniform(0.3, 1.0, n)
        centre = rng.uniform(-10, size + 10, 2)
        xy = centre + np.c_[radii * np.cos(angles), radii * np.sin(angles)]
        if grid is not None:
            xy = np.round(xy / grid) * grid
        polygons.append(Polygon(xy))
    return polygons


def test_scanline_equals_contains_xy_on_random_polygons() -> None:
    rng = np.random.default_rng(0)
    size = 160
    polygons = _random_polygons(rng, 150, size, grid=None)
    channels = [i % 4 for i in range(len(polygons))]
    shapes = list(zip(channels, polygons, strict=True))
    fast = rasterize_shapes(shapes, size, size + 7, 4)
    reference = rasterize_shapes(shapes, size, size + 7, 4, method="contains")
    assert fast.sum() > 10_000
    # Float coordinates: no pixel centre lies exactly on an edge, so the masks are identical.
    np.testing.assert_array_equal(fast, reference)


def test_scanline_differs_from_contains_xy_only_on_boundary_ties() -> None:
    rng = np.random.default_rng(1)
    size = 96
    exact_ties = near_ties = total = 0
    for polygon in _random_polygons(rng, 80, size, grid=0.5):
        geometry = make_polygonal(polygon)
        fast = rasterize_geometry(geometry, size, size)
        reference = rasterize_geometry(geometry, size, size, method="contains")
        total += int(reference.sum())
        rows, cols = np.nonzero(fast != reference)
        if not len(rows):
            continue
        # Every disagreement is a pixel centre on the boundary: exactly (half-integer vertices)
        # or within rounding (vertices make_valid computed at self-intersections).
        distance = shapely.distance(geometry.boundary, shapely.points(cols + 0.5, rows + 0.5))
        assert (distance < 1e-9).all(), distance.max()
        exact = distance == 0
        # contains_xy excludes boundary centres, the top-left rule includes some: on exact
        # ties scanline can only add pixels.
        assert fast[rows[exact], cols[exact]].all()
        exact_ties += int(exact.sum())
        near_ties += int((~exact).sum())
    # Half-integer vertices make ties common (0.7 % of the pixels here); the tie rule keeps the
    # areas unbiased where excluding every tie would shrink each shape.
    assert 0 < exact_ties + near_ties < 0.05 * total
    print(f"ties: {exact_ties} exact + {near_ties} within rounding of {total} pixels")


# --------------------------------------------------------------------------------------------
# The Labelme rule

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


def test_rules_are_checked_by_name() -> None:
    assert RASTERIZE_RULES[0] == "labelme"
    assert [check_rule(rule) for rule in RASTERIZE_RULES] == list(RASTERIZE_RULES)
    with pytest.raises(ValueError, match="labelme, pixel_centre"):
        check_rule("pixel-center")


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
