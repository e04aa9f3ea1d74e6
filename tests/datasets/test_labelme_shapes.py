"""Labelme JSON -> lesion masks, on real files (Labelme's examples, HEI-MED) and bad input.

The default rule is checked pixel for pixel against Labelme's converter written out in
``labelme_reference``; the pixel-centre rule against the shapes' areas.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.labelme import (
    rasterize_annotation,
    read_labelme,
)
from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry
from multitask_dr.datasets.problems import DataError, ProblemLog
from tests.datasets import labelme_reference
from tests.datasets.labelme_files import (
    GOOD_A,
    GOOD_B,
    PRIMITIVE_AREAS,
    png_b64,
    raw_document,
    read_one,
    read_real,
    write_json,
)


def test_primitives_every_shape_type_covers_a_plausible_area() -> None:
    raw = raw_document("primitives/primitives.json")
    annotation = read_real("primitives/primitives.json")
    types = {s.shape_type for s in annotation.shapes}
    assert types == {"rectangle", "circle", "polygon", "line", "point", "linestrip", "mask"}
    for shape, raw_shape in zip(annotation.shapes, raw["shapes"], strict=True):
        pixels = rasterize_geometry(shape.geometry, annotation.height, annotation.width)
        count = int(pixels.sum())
        if shape.shape_type == "mask":
            patch = np.asarray(Image.open(io.BytesIO(base64.b64decode(raw_shape["mask"]))))
            origin = np.round(raw_shape["points"][0]).astype(int)
            expected = np.zeros_like(pixels)
            height, width = patch.shape
            expected[origin[1] : origin[1] + height, origin[0] : origin[0] + width] = patch > 0
            np.testing.assert_array_equal(pixels, expected)  # exactly the patch's pixels
            continue
        area = PRIMITIVE_AREAS[shape.shape_type](np.asarray(raw_shape["points"], dtype=float))
        # Joins add a little to the strip; a 5-px disc samples coarsely.
        tolerance = {"point": 0.05, "linestrip": 0.03}.get(shape.shape_type, 0.005)
        assert count == pytest.approx(area, rel=tolerance), shape.shape_type
        if shape.shape_type == "rectangle":
            assert count == area  # integer corners: exact


def test_line_has_flat_caps(tmp_path: Path) -> None:
    line = {"label": "SE", "points": [[10, 10], [30, 10]], "shape_type": "line"}
    read_one(tmp_path, line, "labelme")
    mask = read_one(tmp_path, line)
    assert (mask[..., 3] == 1).sum() == 20 * 10  # no cap past the end points
    assert mask[5:15, 10:30, 3].all()
    thin = read_one(tmp_path, line, line_width=4.0)
    assert (thin[..., 3] == 1).sum() == 20 * 4


def test_linestrip_has_round_joins(tmp_path: Path) -> None:
    strip = {"label": "SE", "points": [[5, 20], [25, 20], [25, 5]], "shape_type": "linestrip"}
    read_one(tmp_path, strip, "labelme")
    mask = read_one(tmp_path, strip)[..., 3] == 1
    # Two 10-px bands: 20x10 + 15x10, overlapping on a 5x5 square, plus a quarter disc of
    # radius 5 filling the outer corner (a mitre would add a 5x5 square, no join a notch).
    expected = 200 + 150 - 25 + math.pi * 25 / 4
    assert mask.sum() == pytest.approx(expected, abs=3)
    assert mask[22, 27] and not mask[24, 29]  # inside the quarter disc; in a mitre's corner


def test_point_radius_and_circle(tmp_path: Path) -> None:
    point = {"label": "MA", "points": [[20, 20]], "shape_type": "point"}
    assert (read_one(tmp_path, point)[..., 0] == 1).sum() == pytest.approx(math.pi * 25, rel=0.05)
    small = (read_one(tmp_path, point, point_radius=2.0)[..., 0] == 1).sum()
    assert small == pytest.approx(math.pi * 4, abs=2)
    circle = {"label": "MA", "points": [[25, 20], [25, 8]], "shape_type": "circle"}
    assert (read_one(tmp_path, circle)[..., 0] == 1).sum() == pytest.approx(math.pi * 144, rel=0.01)
    # Labelme paints the rim's pixels too: about half a pixel more all round.
    assert (read_one(tmp_path, circle, "labelme")[..., 0] == 1).sum() > math.pi * 12.5**2 * 0.98
    assert (read_one(tmp_path, point, "labelme", point_radius=2.0)[..., 0] == 1).sum() > small


def test_oriented_rectangle_and_mask_patch(tmp_path: Path) -> None:
    oriented = {
        "label": "EX",
        "points": [[20, 5], [35, 20], [20, 35], [5, 20]],
        "shape_type": "oriented_rectangle",
    }
    assert (read_one(tmp_path, oriented)[..., 2] == 1).sum() == pytest.approx(450, abs=15)
    assert (read_one(tmp_path, oriented, "labelme")[..., 2] == 1).sum() > 450
    patch = np.zeros((6, 8), dtype=np.uint8)
    patch[1:5, 2:7] = 1
    patch[3, 4] = 0  # a hole
    mask_shape = {
        "label": "EX",
        "points": [[9.6, 3.4], [16.6, 8.4]],
        "shape_type": "mask",
        "mask": png_b64(patch),
    }
    expected = np.zeros((40, 50), dtype=np.uint8)
    expected[3:9, 10:18] = patch  # pasted at round(points[0]) = (10, 3)
    for rule in ("pixel_centre", "labelme"):  # a patch is its pixels under either rule
        np.testing.assert_array_equal(read_one(tmp_path, mask_shape, rule)[..., 2], expected)


def test_self_intersecting_polygon_is_repaired_not_reported(tmp_path: Path) -> None:
    bow_tie = {"label": "HE", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}
    problems = ProblemLog(strict=True)
    annotation = read_labelme(write_json(tmp_path, [bow_tie]), problems=problems)
    assert annotation is not None
    assert annotation.shapes[0].geometry.area == pytest.approx(50)
    assert (rasterize_annotation(annotation, rasterize="pixel_centre")[..., 1] == 1).sum() == 50
    # The labelme rule draws the outline as annotated, as Labelme does (both lobes filled).
    expected = labelme_reference.one_shape(40, 50, bow_tie)
    np.testing.assert_array_equal(rasterize_annotation(annotation)[..., 1] == 1, expected)


#: Bad shapes: (shape, words the report must contain).
BAD_SHAPES: dict[str, tuple[dict[str, Any], str]] = {
    "two-point polygon": ({"label": "HE", "points": [[1, 1], [5, 5]]}, "at least 3 point"),
    "collinear polygon": (
        {"label": "HE", "points": [[1, 1], [5, 5], [9, 9]], "shape_type": "polygon"},
        "degenerate",
    ),
    "three-point rectangle": (
        {"label": "HE", "points": [[1, 1], [5, 5], [9, 1]], "shape_type": "rectangle"},
        "needs 2 point",
    ),
    "one-point circle": (
        {"label": "MA", "points": [[1, 1]], "shape_type": "circle"},
        "needs 2 point",
    ),
    "NaN coordinates": (
        {"label": "HE", "points": [[1, 1], [float("nan"), 5], [9, 1]], "shape_type": "polygon"},
        "NaN",
    ),
    "unknown shape_type": (
        {"label": "HE", "points": [[1, 1], [5, 5]], "shape_type": "ellipse"},
        "unknown shape_type 'ellipse'",
    ),
    "unknown label": (
        {"label": "drusen", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"},
        "unknown label 'drusen'",
    ),
    "malformed points": (
        {"label": "HE", "points": [[1, 1, 1], "x"], "shape_type": "polygon"},
        "list of [x, y]",
    ),
    "undecodable mask": (
        {"label": "EX", "points": [[1, 1], [5, 5]], "shape_type": "mask", "mask": "bm90IGEgcG5n"},
        "'mask' cannot be decoded",
    ),
    "wholly outside": (
        {"label": "HE", "points": [[100, 100], [120, 120]], "shape_type": "rectangle"},
        "wholly outside",
    ),
    "not an object": ("polygon", "not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_SHAPES))
def test_bad_shape_strict_raises_naming_file_and_shape(tmp_path: Path, case: str) -> None:
    shape, words = BAD_SHAPES[case]
    path = write_json(tmp_path, [GOOD_A, shape, GOOD_B], name="bad_shape.json")
    with pytest.raises(DataError) as error:
        read_labelme(path, problems=ProblemLog(strict=True))
    message = str(error.value)
    assert "bad_shape.json" in message and "shape 1" in message and words in message


@pytest.mark.parametrize("case", list(BAD_SHAPES))
def test_bad_shape_lenient_skips_only_that_shape(tmp_path: Path, case: str) -> None:
    shape, words = BAD_SHAPES[case]
    path = write_json(tmp_path, [GOOD_A, shape, GOOD_B], name="bad_shape.json")
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None
    assert [s.index for s in annotation.shapes] == [0, 2]
    assert len(problems) == 1
    problem = problems.problems[0]
    assert problem.path == path and problem.skipped == "shape"
    assert "shape 1" in problem.reason and words in problem.reason
    mask = rasterize_annotation(annotation)
    assert (mask[..., 1] == 1).sum() == 121 and (mask[..., 2] == 1).sum() == 121


def test_points_outside_the_image_are_clipped_and_reported(tmp_path: Path) -> None:
    sticking_out = {"label": "HE", "points": [[40, 30], [70, 30], [70, 45], [40, 45]]}
    path = write_json(tmp_path, [GOOD_A, sticking_out, GOOD_B], name="outside.json")
    with pytest.raises(DataError, match=r"outside\.json: shape 1.*outside the 50x40 image"):
        read_labelme(path, problems=ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and len(annotation.shapes) == 3
    assert len(problems) == 1 and problems.problems[0].skipped == "part outside the image"
    assert annotation.shapes[1].geometry.bounds == (40.0, 30.0, 50.0, 40.0)
    # Labelme's converter draws the raw points and PIL drops what falls off the canvas.
    assert (rasterize_annotation(annotation)[..., 1] == 1).sum() == 121 + 10 * 10
    centre = rasterize_annotation(annotation, rasterize="pixel_centre")
    assert (centre[..., 1] == 1).sum() == 100 + 100


def test_every_problem_is_listed_in_the_log(tmp_path: Path) -> None:
    shapes = [GOOD_A, *(shape for shape, _ in BAD_SHAPES.values()), GOOD_B]
    path = write_json(tmp_path, shapes, name="many.json")
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and len(annotation.shapes) == 2
    assert len(problems) == len(BAD_SHAPES)
    for index in range(1, len(BAD_SHAPES) + 1):
        assert any(f"shape {index}:" in p.reason for p in problems.problems)
    assert f"{len(BAD_SHAPES)} data problem(s)" in problems.summary()
