import math

import pytest
from shapely.geometry import Point, Polygon, box

from multitask_dr.datasets.rasterize import disc
from multitask_dr.datasets.synthetic.grade import Lesion, grade_from_lesions
from tests.datasets.synthetic.conftest import FOV, blob, he_in


@pytest.mark.parametrize(
    ("lesions", "expected"),
    [
        ([], (0, None)),
        ([blob("MA", 30, 30)], (1, "MA")),
        ([blob("MA", 30, 30 + 5 * i) for i in range(6)], (1, "MA")),
        ([blob("SE", 20 + 10 * i, 30) for i in range(3)], (4, "SE")),
        # Rule 1 is checked before rule 2.
        (he_in([0, 1, 2, 3]) + [blob("SE", 20 + 10 * i, 30) for i in range(3)], (4, "SE")),
        (he_in([0, 1, 2, 3]) + [blob("SE", 20, 30), blob("SE", 30, 30)], (3, "HE")),
        (he_in([0, 1, 2, 3]) + [blob("EX", 30 + i, 70) for i in range(9)], (3, "HE")),
        (he_in([0, 1, 2, 0, 1, 2]), (2, "HE")),
        ([blob("EX", 30, 30), blob("EX", 35, 30), blob("HE", 70, 70)], (2, "EX")),
        ([blob("SE", 30, 30), blob("SE", 40, 30), blob("EX", 70, 70)], (2, "SE")),
        ([blob("SE", 30, 30), blob("MA", 70, 70), blob("MA", 72, 60)], (2, "SE")),
        # Ties: HE > EX > SE.
        ([blob("EX", 30, 30), blob("HE", 70, 70)], (2, "HE")),
        ([blob("SE", 30, 30), blob("HE", 70, 70)], (2, "HE")),
        (
            [blob("SE", 30, 30), blob("SE", 40, 30), blob("EX", 70, 70), blob("EX", 60, 60)],
            (2, "EX"),
        ),
        ([blob(k, 30 + 12 * i, 40) for i, k in enumerate(["SE", "EX", "HE"])], (2, "HE")),
    ],
)
def test_grade_rule_branches(lesions, expected):
    assert grade_from_lesions(lesions, FOV) == expected


def test_quadrants_are_cut_by_centroid_and_lines_belong_right_and_lower():
    cx, cy = FOV[:2]
    on_lines = [
        blob("HE", cx - 10, cy - 10),  # upper-left
        # Squares: their centroids are exactly on the dividing lines (a buffered point's is not).
        Lesion("HE", box(cx - 2, cy - 12, cx + 2, cy - 8)),  # on the vertical line -> upper-right
        Lesion("HE", box(cx - 12, cy - 2, cx - 8, cy + 2)),  # on the horizontal line -> lower-left
        blob("HE", cx + 10, cy + 10),  # lower-right
    ]
    assert on_lines[1].centroid == (cx, cy - 10) and on_lines[2].centroid == (cx - 10, cy)
    assert grade_from_lesions(on_lines, FOV) == (3, "HE")
    nudged = [*on_lines[:1], blob("HE", cx - 0.01, cy - 10), *on_lines[2:]]
    assert grade_from_lesions(nudged, FOV) == (2, "HE")
    # A lesion reaching into the upper-right quadrant counts only where its centroid is (UL).
    wide = Lesion(
        "HE", Polygon([(cx - 30, cy - 5), (cx + 5, cy - 5), (cx + 5, cy - 2), (cx - 30, cy - 2)])
    )
    assert grade_from_lesions([wide, *he_in([0, 2, 3])], FOV) == (2, "HE")
    assert grade_from_lesions([wide, *he_in([1, 2, 3])], FOV) == (3, "HE")


def test_lesion_rejects_unknown_kind_and_invalid_polygon():
    with pytest.raises(ValueError, match="kind"):
        Lesion("CWS", Point(1, 1).buffer(1))
    with pytest.raises(ValueError, match="valid"):
        Lesion("HE", Polygon([(0, 0), (4, 4), (4, 0), (0, 4)]))


def test_circle_lesion_is_exactly_the_labelme_circle():
    lesion = Lesion.from_circle("MA", (10.123, 20.456), 1.501)
    (cx, cy), (rx, ry) = lesion.circle
    assert (cx, cy) == (10.12, 20.46) and ry == cy
    expected = disc(cx, cy, math.hypot(rx - cx, ry - cy))
    assert lesion.geometry.equals_exact(expected, 0.0)
    assert math.hypot(rx - cx, ry - cy) >= 1.5
