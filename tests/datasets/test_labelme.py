"""Labelme JSON -> lesion masks, on real files (Labelme's examples, HEI-MED) and bad input.

The default rule is checked pixel for pixel against Labelme's converter written out in
``labelme_reference``; the pixel-centre rule against the shapes' areas.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from PIL import Image

from multitask_dr.datasets.labelme import (
    LabelmeAnnotation,
    normalise_label_map,
    rasterize_annotation,
    read_labelme,
)
from multitask_dr.datasets.labelme_image import load_labelme_image
from multitask_dr.datasets.pixel_centre_rule import rasterize_geometry
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.lesions import IGNORE_INDEX, LESIONS
from tests.conftest import SHARED_DATA, shared_path
from tests.datasets import labelme_reference

LABELME = SHARED_DATA / "labelme"
REAL_FILES = sorted(p.relative_to(LABELME).as_posix() for p in LABELME.rglob("*.json")) or [
    "missing.json"  # collected without the shared data; shared_path() skips it
]
OLDEST = "legacy_pre_61f5fee4/2011_000003_oldest_43c442db.json"
#: The 2018 file names no size and its image is not shipped; its v4 twin says 500x338.
OLDEST_SIZE = (338, 500)

#: Every label in Labelme's examples (VOC, APC and primitive names) mapped onto lesions so the
#: files rasterize fully; the mapping itself is arbitrary.
EXAMPLE_LABEL_MAP = {
    "person": "HE",
    "bottle": "EX",
    "chair": "SE",
    "sofa": "MA",
    "bus": "HE",
    "car": "EX",
    "track": "SE",
    "shelf": "SE",
    "highland_6539_self_stick_notes": "HE",
    "mead_index_cards": "EX",
    "kong_air_dog_squeakair_tennis_ball": "MA",
    "rectangle": "HE",
    "circle": "MA",
    "polygon": "EX",
    "line": "SE",
    "point": "MA",
    "line_strip": "SE",
    "octagon": "EX",
}


def _raw(relative: str) -> dict[str, Any]:
    return json.loads(shared_path("labelme", relative).read_text())


def _read_real(relative: str, problems: ProblemLog | None = None) -> LabelmeAnnotation:
    path = shared_path("labelme", relative)
    annotation = read_labelme(
        path, label_map=EXAMPLE_LABEL_MAP, problems=problems or ProblemLog(strict=True)
    )
    assert annotation is not None
    return annotation


def _size(annotation: LabelmeAnnotation) -> tuple[int, int]:
    if annotation.height is None or annotation.width is None:
        return OLDEST_SIZE
    return annotation.height, annotation.width


# --------------------------------------------------------------------------------------------
# Labelme's real example files


@pytest.mark.parametrize("rule", ["labelme", "pixel_centre"])
@pytest.mark.parametrize("relative", REAL_FILES)
def test_every_real_file_parses_and_rasterizes(relative: str, rule: str) -> None:
    raw = _raw(relative)
    annotation = _read_real(relative)  # strict: any problem would raise
    assert len(annotation.shapes) == len(raw["shapes"])
    height, width = _size(annotation)
    mask = rasterize_annotation(annotation, height, width, rasterize=rule)  # type: ignore[arg-type]
    assert mask.shape == (height, width, len(LESIONS))
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1, IGNORE_INDEX}

    ignore = (mask == IGNORE_INDEX).all(axis=2)
    assert ((mask == IGNORE_INDEX).any(axis=2) == ignore).all()  # ignore spans all channels
    has_ignore = any(s["label"] == "__ignore__" for s in raw["shapes"])
    assert ignore.any() == has_ignore
    for channel, lesion in enumerate(LESIONS):
        geometries = [s.geometry for s in annotation.shapes if s.lesion == lesion]
        covered = mask[..., channel] != 0
        if not geometries:
            assert not (mask[..., channel] == 1).any()
            continue
        assert (mask[..., channel] == 1).any()
        if rule == "labelme":
            continue  # pixel for pixel against Labelme's converter below
        # Pixel count of (lesion union ignore) matches the geometric area up to edge sampling.
        ignored = [s.geometry for s in annotation.shapes if s.lesion is None]
        union = shapely.union_all(geometries + ignored).intersection(
            shapely.box(0, 0, width, height)
        )
        assert abs(int(covered.sum()) - union.area) <= max(0.01 * union.area, 0.2 * union.length)


@pytest.mark.parametrize("relative", REAL_FILES)
def test_every_shape_of_labelmes_examples_is_labelmes_mask(relative: str) -> None:
    raw = _raw(relative)
    annotation = _read_real(relative)
    height, width = _size(annotation)
    for shape, raw_shape in zip(annotation.shapes, raw["shapes"], strict=True):
        alone = dataclasses.replace(annotation, shapes=(shape,))
        mask = rasterize_annotation(alone, height, width)
        expected = labelme_reference.one_shape(height, width, raw_shape)
        value = IGNORE_INDEX if shape.lesion is None else 1
        channels = range(len(LESIONS)) if shape.lesion is None else [LESIONS.index(shape.lesion)]
        for channel in range(len(LESIONS)):
            want = expected if channel in channels else np.zeros_like(expected)
            assert np.array_equal(mask[..., channel] == value, want), (shape.index, channel)
        assert expected.any()


def _label_map_for(document: dict[str, Any]) -> dict[str, str]:
    """Each label of a file onto a channel, in turn: every shape is drawn, overlaps vary."""
    labels = sorted({s["label"] for s in document["shapes"]} - {"__ignore__"})
    return {label: LESIONS[i % len(LESIONS)] for i, label in enumerate(labels)}


@pytest.mark.parametrize("folder", ["labelme", "heimed_labelme"])
def test_default_masks_equal_labelmes_converter_on_every_real_file(folder: str) -> None:
    files = sorted(shared_path(folder).rglob("*.json"))
    assert files
    shapes = 0
    differing: dict[str, int] = {}
    for path in files:
        document = json.loads(path.read_text())
        label_map = _label_map_for(document)
        annotation = read_labelme(path, label_map=label_map, problems=ProblemLog(strict=True))
        assert annotation is not None and len(annotation.shapes) == len(document["shapes"])
        height, width = _size(annotation)
        expected = labelme_reference.file_masks(document, label_map, height, width)
        got = rasterize_annotation(annotation, height, width)
        shapes += len(document["shapes"])
        if not np.array_equal(got, expected):
            differing[path.name] = int((got != expected).any(axis=2).sum())
    assert not differing, f"pixels differing from Labelme's converter: {differing}"
    assert shapes > (3000 if folder == "heimed_labelme" else 50)


@pytest.mark.parametrize("relative", REAL_FILES)
def test_real_files_with_the_dr_table_report_unknown_labels(relative: str) -> None:
    raw = _raw(relative)
    path = shared_path("labelme", relative)
    lesion_shapes = [s for s in raw["shapes"] if s["label"] != "__ignore__"]

    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None
    # One report per unknown label and file, with its shape count.
    labels = Counter(s["label"] for s in lesion_shapes)
    assert len(problems) == len(labels)
    assert all("unknown label" in p.reason and p.skipped == "shape" for p in problems.problems)
    for label, count in labels.items():
        assert any(f"{label!r} on {count} shape(s)" in p.reason for p in problems.problems)
    assert len(annotation.shapes) == len(raw["shapes"]) - len(lesion_shapes)  # ignore kept
    mask = rasterize_annotation(annotation, *_size(annotation))
    assert not (mask == 1).any()

    if lesion_shapes:
        first = next(i for i, s in enumerate(raw["shapes"]) if s["label"] != "__ignore__")
        with pytest.raises(DataError, match=re.escape(path.name)) as error:
            read_labelme(path, problems=ProblemLog(strict=True))
        assert f"shape {first}: " in str(error.value) and "unknown label" in str(error.value)
    else:
        assert read_labelme(path, problems=ProblemLog(strict=True)) is not None


#: Expected pixel count of each primitive: analytic where the shape allows it.
PRIMITIVE_AREAS: dict[str, Callable[[np.ndarray], float]] = {
    "rectangle": lambda p: abs(np.prod(p[1] - p[0])),
    "circle": lambda p: math.pi * float(np.sum((p[1] - p[0]) ** 2)),
    "polygon": lambda p: shapely.Polygon(p).area,
    "line": lambda p: 10.0 * float(np.hypot(*(p[1] - p[0]))),
    "point": lambda p: math.pi * 5.0**2,
    "linestrip": lambda p: 10.0 * float(np.hypot(*np.diff(p, axis=0).T).sum()),
}


def test_primitives_every_shape_type_covers_a_plausible_area() -> None:
    raw = _raw("primitives/primitives.json")
    annotation = _read_real("primitives/primitives.json")
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


def test_tutorial_embedded_image_decodes_although_image_path_is_the_json() -> None:
    annotation = _read_real("tutorial/apc2016_obj3.json")
    assert annotation.image_data is not None
    assert annotation.image_path is None  # "apc2016_obj3.json" is the file itself
    problems = ProblemLog(strict=True)
    image = load_labelme_image(annotation, problems)
    assert image is not None
    assert image.shape == (annotation.height, annotation.width, 3) == (907, 1210, 3)
    assert image.dtype == np.uint8
    assert image.std() > 10  # a real photo, not a blank


def test_tutorial_without_image_data_falls_back_to_a_sibling_image(tmp_path: Path) -> None:
    source = _read_real("tutorial/apc2016_obj3.json")
    image = load_labelme_image(source, ProblemLog(strict=True))
    raw = _raw("tutorial/apc2016_obj3.json")
    raw["imageData"] = None
    copy = tmp_path / "apc2016_obj3.json"
    copy.write_text(json.dumps(raw))
    problems = ProblemLog(strict=False)
    missing = read_labelme(copy, label_map=EXAMPLE_LABEL_MAP, problems=problems)
    assert missing is not None and len(problems) == 0
    assert load_labelme_image(missing, problems) is None
    assert "image not found" in problems.problems[0].reason
    assert "apc2016_obj3.{jpg" in problems.problems[0].reason
    Image.fromarray(image).save(tmp_path / "apc2016_obj3.png")  # lossless, to compare exactly
    found = read_labelme(copy, label_map=EXAMPLE_LABEL_MAP, problems=ProblemLog(strict=True))
    assert found is not None and found.image_path == tmp_path / "apc2016_obj3.png"
    np.testing.assert_array_equal(load_labelme_image(found, ProblemLog(strict=True)), image)


def test_2018_file_without_shape_type_version_or_size() -> None:
    raw = _raw(OLDEST)
    assert "version" not in raw and "imageHeight" not in raw
    assert all("shape_type" not in s for s in raw["shapes"])
    annotation = _read_real(OLDEST)
    assert annotation.version is None and annotation.flags == {}
    assert annotation.height is None and annotation.width is None  # image not shipped
    assert {s.shape_type for s in annotation.shapes} == {"polygon"}
    with pytest.raises(DataError, match="size unknown"):
        rasterize_annotation(annotation)
    oldest = rasterize_annotation(annotation, *OLDEST_SIZE)
    # Its v4 successor holds the same polygons, re-saved with slightly moved vertices.
    newer = rasterize_annotation(_read_real("legacy_pre_61f5fee4/2011_000003.json"))
    assert oldest.shape == newer.shape
    for channel in range(len(LESIONS)):
        a, b = oldest[..., channel] != 0, newer[..., channel] != 0
        if a.any() or b.any():
            assert (a & b).sum() / (a | b).sum() > 0.98


def test_legacy_color_keys_are_ignored() -> None:
    raw = _raw("legacy_pre_61f5fee4/2011_000003.json")
    assert "lineColor" in raw and "fillColor" in raw
    annotation = _read_real("legacy_pre_61f5fee4/2011_000003.json")
    assert annotation.version == "4.0.0" and len(annotation.shapes) == 5
    assert annotation.height == 338 and annotation.width == 500


@pytest.mark.parametrize("name", ["0001.json", "0002.json"])
def test_classification_files_give_empty_masks(name: str) -> None:
    annotation = _read_real(f"classification/data_annotated/{name}")
    assert annotation.shapes == ()
    assert annotation.flags["cat"] == (name == "0001.json")
    mask = rasterize_annotation(annotation)
    assert mask.shape == (480, 640, 4) and not mask.any()
    image = load_labelme_image(annotation, ProblemLog(strict=True))
    assert image is not None and image.shape == (480, 640, 3)


def test_missing_image_names_the_json_and_the_paths_tried() -> None:
    annotation = _read_real("legacy_pre_61f5fee4/2011_000003.json")  # no .jpg shipped
    with pytest.raises(DataError, match=r"2011_000003\.json: image not found.*2011_000003\.\{jpg"):
        load_labelme_image(annotation, ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    assert load_labelme_image(annotation, problems) is None
    assert len(problems) == 1 and problems.problems[0].skipped == "file"


def test_real_polygon_just_past_the_border_is_clipped_silently() -> None:
    # Labelme's own example has a vertex 0.4 px below the image (within EDGE_TOLERANCE).
    raw = _raw("semantic_segmentation/data_annotated/2011_000006.json")
    assert max(y for s in raw["shapes"] for _, y in s["points"]) > raw["imageHeight"]
    annotation = _read_real("semantic_segmentation/data_annotated/2011_000006.json")
    assert all(s.geometry.bounds[3] <= annotation.height for s in annotation.shapes)


# --------------------------------------------------------------------------------------------
# Synthetic files: shape rules and bad input

GOOD_A = {"label": "HE", "points": [[2, 2], [12, 2], [12, 12], [2, 12]], "shape_type": "polygon"}
GOOD_B = {"label": "EX", "points": [[20, 20], [30, 30]], "shape_type": "rectangle"}


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _write(tmp_path: Path, shapes: list[Any], name: str = "sample.json", **top: Any) -> Path:
    data = {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": "sample.png"}
    data |= {"imageData": None, "imageHeight": 40, "imageWidth": 50} | top
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _one(
    tmp_path: Path, shape: dict[str, Any], rule: str = "pixel_centre", **kwargs: Any
) -> np.ndarray:
    """One shape's mask; by default the pixel-centre rule, whose counts are the areas."""
    path = _write(tmp_path, [shape])
    annotation = read_labelme(path, problems=ProblemLog(strict=True), **kwargs)
    assert annotation is not None and len(annotation.shapes) == 1
    mask = rasterize_annotation(annotation, rasterize=rule)  # type: ignore[arg-type]
    if rule == "labelme" and not kwargs:  # the reference draws Labelme's sizes
        expected = labelme_reference.one_shape(40, 50, shape)
        assert np.array_equal(mask.max(axis=2) != 0, expected)
    return mask


def test_labels_match_case_insensitively_and_ignore_wins(tmp_path: Path) -> None:
    shapes = [
        {"label": "  Hemorrhage ", "points": [[0, 0], [20, 20]], "shape_type": "rectangle"},
        {"label": "MA", "points": [[5, 5], [8, 8]], "shape_type": "rectangle"},
        {"label": "__IGNORE__", "points": [[10, 10], [30, 30]], "shape_type": "rectangle"},
    ]
    annotation = read_labelme(_write(tmp_path, shapes), problems=ProblemLog(strict=True))
    assert annotation is not None
    assert [s.lesion for s in annotation.shapes] == ["HE", "MA", None]
    mask = rasterize_annotation(annotation)
    # The labelme rule: integer corners are pixel centres, both ends included.
    assert (mask[..., 1] == 1).sum() == 21 * 21 - 11 * 11
    assert (mask[..., 0] == 1).sum() == 16
    assert (mask[10:31, 10:31] == IGNORE_INDEX).all() and (mask == IGNORE_INDEX).sum() == 441 * 4
    centre = rasterize_annotation(annotation, rasterize="pixel_centre")
    assert (centre[..., 1] == 1).sum() == 400 - 100
    assert (centre[..., 0] == 1).sum() == 9
    assert (centre[10:30, 10:30] == IGNORE_INDEX).all()


def test_custom_label_map_is_normalised_and_checked() -> None:
    assert normalise_label_map({" Blot ": "he"}) == {"blot": "HE"}
    assert normalise_label_map({"OBL": "Ignore", "Drusen": None, "Scar": "none"}) == {
        "obl": "ignore",
        "drusen": "none",
        "scar": "none",
    }
    with pytest.raises(ValueError, match="use a lesion"):
        normalise_label_map({"drusen": "DR"})


def test_line_has_flat_caps(tmp_path: Path) -> None:
    line = {"label": "SE", "points": [[10, 10], [30, 10]], "shape_type": "line"}
    _one(tmp_path, line, "labelme")
    mask = _one(tmp_path, line)
    assert (mask[..., 3] == 1).sum() == 20 * 10  # no cap past the end points
    assert mask[5:15, 10:30, 3].all()
    thin = _one(tmp_path, line, line_width=4.0)
    assert (thin[..., 3] == 1).sum() == 20 * 4


def test_linestrip_has_round_joins(tmp_path: Path) -> None:
    strip = {"label": "SE", "points": [[5, 20], [25, 20], [25, 5]], "shape_type": "linestrip"}
    _one(tmp_path, strip, "labelme")
    mask = _one(tmp_path, strip)[..., 3] == 1
    # Two 10-px bands: 20x10 + 15x10, overlapping on a 5x5 square, plus a quarter disc of
    # radius 5 filling the outer corner (a mitre would add a 5x5 square, no join a notch).
    expected = 200 + 150 - 25 + math.pi * 25 / 4
    assert mask.sum() == pytest.approx(expected, abs=3)
    assert mask[22, 27] and not mask[24, 29]  # inside the quarter disc; in a mitre's corner


def test_point_radius_and_circle(tmp_path: Path) -> None:
    point = {"label": "MA", "points": [[20, 20]], "shape_type": "point"}
    assert (_one(tmp_path, point)[..., 0] == 1).sum() == pytest.approx(math.pi * 25, rel=0.05)
    small = (_one(tmp_path, point, point_radius=2.0)[..., 0] == 1).sum()
    assert small == pytest.approx(math.pi * 4, abs=2)
    circle = {"label": "MA", "points": [[25, 20], [25, 8]], "shape_type": "circle"}
    assert (_one(tmp_path, circle)[..., 0] == 1).sum() == pytest.approx(math.pi * 144, rel=0.01)
    # Labelme paints the rim's pixels too: about half a pixel more all round.
    assert (_one(tmp_path, circle, "labelme")[..., 0] == 1).sum() > math.pi * 12.5**2 * 0.98
    assert (_one(tmp_path, point, "labelme", point_radius=2.0)[..., 0] == 1).sum() > small


def test_oriented_rectangle_and_mask_patch(tmp_path: Path) -> None:
    oriented = {
        "label": "EX",
        "points": [[20, 5], [35, 20], [20, 35], [5, 20]],
        "shape_type": "oriented_rectangle",
    }
    assert (_one(tmp_path, oriented)[..., 2] == 1).sum() == pytest.approx(450, abs=15)
    assert (_one(tmp_path, oriented, "labelme")[..., 2] == 1).sum() > 450
    patch = np.zeros((6, 8), dtype=np.uint8)
    patch[1:5, 2:7] = 1
    patch[3, 4] = 0  # a hole
    mask_shape = {
        "label": "EX",
        "points": [[9.6, 3.4], [16.6, 8.4]],
        "shape_type": "mask",
        "mask": _png_b64(patch),
    }
    expected = np.zeros((40, 50), dtype=np.uint8)
    expected[3:9, 10:18] = patch  # pasted at round(points[0]) = (10, 3)
    for rule in ("pixel_centre", "labelme"):  # a patch is its pixels under either rule
        np.testing.assert_array_equal(_one(tmp_path, mask_shape, rule)[..., 2], expected)


def test_self_intersecting_polygon_is_repaired_not_reported(tmp_path: Path) -> None:
    bow_tie = {"label": "HE", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}
    problems = ProblemLog(strict=True)
    annotation = read_labelme(_write(tmp_path, [bow_tie]), problems=problems)
    assert annotation is not None
    assert annotation.shapes[0].geometry.area == pytest.approx(50)
    assert (rasterize_annotation(annotation, rasterize="pixel_centre")[..., 1] == 1).sum() == 50
    # The labelme rule draws the outline as annotated, as Labelme does (both lobes filled).
    expected = labelme_reference.one_shape(40, 50, bow_tie)
    np.testing.assert_array_equal(rasterize_annotation(annotation)[..., 1] == 1, expected)


def test_size_comes_from_image_data_when_not_declared(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    path = _write(tmp_path, [GOOD_A], imageData=_png_b64(pixels), imageHeight=None, imageWidth=None)
    annotation = read_labelme(path, problems=ProblemLog(strict=True))
    assert annotation is not None and (annotation.height, annotation.width) == (16, 24)
    np.testing.assert_array_equal(load_labelme_image(annotation, ProblemLog(strict=True)), pixels)
    assert rasterize_annotation(annotation).shape == (16, 24, 4)


def test_size_comes_from_sibling_image_with_windows_image_path(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((12, 18, 3), dtype=np.uint8)).save(tmp_path / "images" / "eye.png")
    path = _write(
        tmp_path, [GOOD_A], imagePath="images\\eye.png", imageHeight=None, imageWidth=None
    )
    annotation = read_labelme(path, problems=ProblemLog(strict=True))
    assert annotation is not None
    assert annotation.image_path == tmp_path / "images" / "eye.png"
    assert (annotation.height, annotation.width) == (12, 18)


def test_rasterize_rejects_a_size_the_annotation_contradicts(tmp_path: Path) -> None:
    annotation = read_labelme(_write(tmp_path, [GOOD_A]), problems=ProblemLog(strict=True))
    assert annotation is not None
    with pytest.raises(DataError, match=r"sample\.json.*50x40.*60x40"):
        rasterize_annotation(annotation, 40, 60)
    with pytest.raises(ValueError, match="both"):
        rasterize_annotation(annotation, 40)


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
    path = _write(tmp_path, [GOOD_A, shape, GOOD_B], name="bad_shape.json")
    with pytest.raises(DataError) as error:
        read_labelme(path, problems=ProblemLog(strict=True))
    message = str(error.value)
    assert "bad_shape.json" in message and "shape 1" in message and words in message


@pytest.mark.parametrize("case", list(BAD_SHAPES))
def test_bad_shape_lenient_skips_only_that_shape(tmp_path: Path, case: str) -> None:
    shape, words = BAD_SHAPES[case]
    path = _write(tmp_path, [GOOD_A, shape, GOOD_B], name="bad_shape.json")
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
    path = _write(tmp_path, [GOOD_A, sticking_out, GOOD_B], name="outside.json")
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


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"shapes": [', "not valid JSON"),
        ("[1, 2, 3]", "not a Labelme file"),
        ('{"version": "5.0.1"}', "not a Labelme file"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
def test_bad_file_strict_raises_and_lenient_skips(
    tmp_path: Path, content: str | bytes, words: str
) -> None:
    path = tmp_path / "broken.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=rf"broken\.json: {words}"):
        read_labelme(path, problems=ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    assert read_labelme(path, problems=problems) is None
    assert len(problems) == 1 and problems.problems[0].skipped == "file"


def test_missing_file_is_reported(tmp_path: Path) -> None:
    problems = ProblemLog(strict=False)
    assert read_labelme(tmp_path / "nope.json", problems=problems) is None
    assert "cannot read" in problems.problems[0].reason


def test_undecodable_image_data_keeps_the_shapes(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD_A, GOOD_B], name="bad_data.json", imageData="bm90IGFuIGltYWdl")
    with pytest.raises(DataError, match=r"bad_data\.json: imageData cannot be decoded"):
        read_labelme(path, problems=ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and annotation.image_data is None
    assert len(annotation.shapes) == 2 and (annotation.height, annotation.width) == (40, 50)
    assert [p.skipped for p in problems.problems] == ["imageData"]


def test_declared_size_contradicting_image_data_is_reported(tmp_path: Path) -> None:
    image = _png_b64(np.zeros((16, 24, 3), dtype=np.uint8))
    path = _write(tmp_path, [GOOD_A], name="sized.json", imageData=image)
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and (annotation.height, annotation.width) == (16, 24)
    assert "say 50x40 but the embedded image is 24x16" in problems.problems[0].reason


def test_every_problem_is_listed_in_the_log(tmp_path: Path) -> None:
    shapes = [GOOD_A, *(shape for shape, _ in BAD_SHAPES.values()), GOOD_B]
    path = _write(tmp_path, shapes, name="many.json")
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and len(annotation.shapes) == 2
    assert len(problems) == len(BAD_SHAPES)
    for index in range(1, len(BAD_SHAPES) + 1):
        assert any(f"shape {index}:" in p.reason for p in problems.problems)
    assert f"{len(BAD_SHAPES)} data problem(s)" in problems.summary()


def test_label_map_sends_labels_to_lesions_ignore_regions_or_nowhere(tmp_path: Path) -> None:
    shapes = [
        {"label": "Exudate", "points": [[2, 2], [6, 6]], "shape_type": "rectangle"},
        {"label": "Other Bright Lesion", "points": [[10, 10], [14, 14]], "shape_type": "rectangle"},
        {"label": "Drusen", "points": [[20, 2], [24, 6]], "shape_type": "rectangle"},
        {"label": "Drusen", "points": [[20, 10], [24, 14]], "shape_type": "rectangle"},
        {"label": "Artifact", "points": [[2, 20], [6, 24]], "shape_type": "rectangle"},
        {"label": "Artifact", "points": [[10, 20], [14, 24]], "shape_type": "rectangle"},
        {"label": "Artifact", "points": [[20, 20], [24, 24]], "shape_type": "rectangle"},
    ]
    path = _write(tmp_path, shapes, name="foreign.json")
    label_map = {"exudate": "EX", "Other Bright Lesion": "ignore", "drusen": None}
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, label_map=label_map, problems=problems)
    assert annotation is not None
    # Drusen are "not one of ours": dropped without a word. Artifact is unmapped: one line.
    assert [p.reason.split(";")[0] for p in problems.problems] == [
        "shape 4: unknown label 'Artifact' on 3 shape(s)"
    ]
    mask = rasterize_annotation(annotation)
    ex = LESIONS.index("EX")
    assert (mask[2:7, 2:7, ex] == 1).all()
    assert (mask[10:15, 10:15] == IGNORE_INDEX).all()  # every channel unscored there
    assert not mask[2:7, 20:25].any() and not mask[20:25].any()  # drusen, artifacts: background
    with pytest.raises(ValueError, match="'ignore'"):
        read_labelme(path, label_map={"exudate": "bright"}, problems=ProblemLog())
