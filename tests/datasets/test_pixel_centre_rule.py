"""Both rasterizing rules: the Labelme rule against Labelme's converter, the pixel-centre rule
against analytic areas, ties and shapely; unions and ignore regions for both."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry, rasterize_shapes
from multitask_dr.datasets.rasterize import (
    IGNORE_CHANNEL,
    make_polygonal,
)
from multitask_dr.lesions import IGNORE_INDEX

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
