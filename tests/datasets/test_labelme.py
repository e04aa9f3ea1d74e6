"""Labelme JSON -> lesion masks, on real files (Labelme's examples, HEI-MED) and bad input.

The default rule is checked pixel for pixel against Labelme's converter written out in
``labelme_reference``; the pixel-centre rule against the shapes' areas.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from multitask_dr.datasets.labelme import (
    normalise_label_map,
    rasterize_annotation,
    read_labelme,
)
from multitask_dr.datasets.labelme_image import load_labelme_image
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.lesions import IGNORE_INDEX, LESIONS
from tests.conftest import shared_path
from tests.datasets import labelme_reference
from tests.datasets.labelme_files import (
    GOOD_A,
    OLDEST,
    OLDEST_SIZE,
    REAL_FILES,
    annotation_size,
    raw_document,
    read_real,
    write_json,
)


@pytest.mark.parametrize("rule", ["labelme", "pixel_centre"])
@pytest.mark.parametrize("relative", REAL_FILES)
def test_every_real_file_parses_and_rasterizes(relative: str, rule: str) -> None:
    raw = raw_document(relative)
    annotation = read_real(relative)  # strict: any problem would raise
    assert len(annotation.shapes) == len(raw["shapes"])
    height, width = annotation_size(annotation)
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
    raw = raw_document(relative)
    annotation = read_real(relative)
    height, width = annotation_size(annotation)
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
        height, width = annotation_size(annotation)
        expected = labelme_reference.file_masks(document, label_map, height, width)
        got = rasterize_annotation(annotation, height, width)
        shapes += len(document["shapes"])
        if not np.array_equal(got, expected):
            differing[path.name] = int((got != expected).any(axis=2).sum())
    assert not differing, f"pixels differing from Labelme's converter: {differing}"
    assert shapes > (3000 if folder == "heimed_labelme" else 50)


@pytest.mark.parametrize("relative", REAL_FILES)
def test_real_files_with_the_dr_table_report_unknown_labels(relative: str) -> None:
    raw = raw_document(relative)
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
    mask = rasterize_annotation(annotation, *annotation_size(annotation))
    assert not (mask == 1).any()

    if lesion_shapes:
        first = next(i for i, s in enumerate(raw["shapes"]) if s["label"] != "__ignore__")
        with pytest.raises(DataError, match=re.escape(path.name)) as error:
            read_labelme(path, problems=ProblemLog(strict=True))
        assert f"shape {first}: " in str(error.value) and "unknown label" in str(error.value)
    else:
        assert read_labelme(path, problems=ProblemLog(strict=True)) is not None


def test_2018_file_without_shape_type_version_or_size() -> None:
    raw = raw_document(OLDEST)
    assert "version" not in raw and "imageHeight" not in raw
    assert all("shape_type" not in s for s in raw["shapes"])
    annotation = read_real(OLDEST)
    assert annotation.version is None and annotation.flags == {}
    assert annotation.height is None and annotation.width is None  # image not shipped
    assert {s.shape_type for s in annotation.shapes} == {"polygon"}
    with pytest.raises(DataError, match="size unknown"):
        rasterize_annotation(annotation)
    oldest = rasterize_annotation(annotation, *OLDEST_SIZE)
    # Its v4 successor holds the same polygons, re-saved with slightly moved vertices.
    newer = rasterize_annotation(read_real("legacy_pre_61f5fee4/2011_000003.json"))
    assert oldest.shape == newer.shape
    for channel in range(len(LESIONS)):
        a, b = oldest[..., channel] != 0, newer[..., channel] != 0
        if a.any() or b.any():
            assert (a & b).sum() / (a | b).sum() > 0.98


def test_legacy_color_keys_are_ignored() -> None:
    raw = raw_document("legacy_pre_61f5fee4/2011_000003.json")
    assert "lineColor" in raw and "fillColor" in raw
    annotation = read_real("legacy_pre_61f5fee4/2011_000003.json")
    assert annotation.version == "4.0.0" and len(annotation.shapes) == 5
    assert annotation.height == 338 and annotation.width == 500


@pytest.mark.parametrize("name", ["0001.json", "0002.json"])
def test_classification_files_give_empty_masks(name: str) -> None:
    annotation = read_real(f"classification/data_annotated/{name}")
    assert annotation.shapes == ()
    assert annotation.flags["cat"] == (name == "0001.json")
    mask = rasterize_annotation(annotation)
    assert mask.shape == (480, 640, 4) and not mask.any()
    image = load_labelme_image(annotation, ProblemLog(strict=True))
    assert image is not None and image.shape == (480, 640, 3)


def test_real_polygon_just_past_the_border_is_clipped_silently() -> None:
    # Labelme's own example has a vertex 0.4 px below the image (within EDGE_TOLERANCE).
    raw = raw_document("semantic_segmentation/data_annotated/2011_000006.json")
    assert max(y for s in raw["shapes"] for _, y in s["points"]) > raw["imageHeight"]
    annotation = read_real("semantic_segmentation/data_annotated/2011_000006.json")
    assert all(s.geometry.bounds[3] <= annotation.height for s in annotation.shapes)


def test_labels_match_case_insensitively_and_ignore_wins(tmp_path: Path) -> None:
    shapes = [
        {"label": "  Hemorrhage ", "points": [[0, 0], [20, 20]], "shape_type": "rectangle"},
        {"label": "MA", "points": [[5, 5], [8, 8]], "shape_type": "rectangle"},
        {"label": "__IGNORE__", "points": [[10, 10], [30, 30]], "shape_type": "rectangle"},
    ]
    annotation = read_labelme(write_json(tmp_path, shapes), problems=ProblemLog(strict=True))
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


def test_rasterize_rejects_a_size_the_annotation_contradicts(tmp_path: Path) -> None:
    annotation = read_labelme(write_json(tmp_path, [GOOD_A]), problems=ProblemLog(strict=True))
    assert annotation is not None
    with pytest.raises(DataError, match=r"sample\.json.*50x40.*60x40"):
        rasterize_annotation(annotation, 40, 60)
    with pytest.raises(ValueError, match="both"):
        rasterize_annotation(annotation, 40)


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
    path = write_json(tmp_path, shapes, name="foreign.json")
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
