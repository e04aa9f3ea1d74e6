"""Both rasterizing rules: the Labelme rule against Labelme's converter, the pixel-centre rule
against analytic areas, ties and shapely; unions and ignore regions for both."""

from __future__ import annotations

import math

import pytest
from shapely.geometry import box

from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry
from multitask_dr.datasets.rasterize import (
    RASTERIZE_RULES,
    check_rule,
    disc,
    disc_quad_segs,
    make_polygonal,
)


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


def test_make_polygonal_leaves_valid_geometries_alone() -> None:
    square = box(0, 0, 3, 3)
    assert make_polygonal(square) is square


def test_rules_are_checked_by_name() -> None:
    assert RASTERIZE_RULES[0] == "labelme"
    assert [check_rule(rule) for rule in RASTERIZE_RULES] == list(RASTERIZE_RULES)
    with pytest.raises(ValueError, match="labelme, pixel_centre"):
        check_rule("pixel-center")
