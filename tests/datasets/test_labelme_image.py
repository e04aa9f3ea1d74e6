"""Labelme JSON -> lesion masks, on real files (Labelme's examples, HEI-MED) and bad input.

The default rule is checked pixel for pixel against Labelme's converter written out in
``labelme_reference``; the pixel-centre rule against the shapes' areas.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.labelme import (
    rasterize_annotation,
    read_labelme,
)
from multitask_dr.datasets.labelme_image import load_labelme_image
from multitask_dr.datasets.problems import DataError, ProblemLog
from tests.datasets.labelme_files import (
    EXAMPLE_LABEL_MAP,
    GOOD_A,
    GOOD_B,
    png_b64,
    raw_document,
    read_real,
    write_json,
)


def test_tutorial_embedded_image_decodes_although_image_path_is_the_json() -> None:
    annotation = read_real("tutorial/apc2016_obj3.json")
    assert annotation.image_data is not None
    assert annotation.image_path is None  # "apc2016_obj3.json" is the file itself
    problems = ProblemLog(strict=True)
    image = load_labelme_image(annotation, problems)
    assert image is not None
    assert image.shape == (annotation.height, annotation.width, 3) == (907, 1210, 3)
    assert image.dtype == np.uint8
    assert image.std() > 10  # a real photo, not a blank


def test_tutorial_without_image_data_falls_back_to_a_sibling_image(tmp_path: Path) -> None:
    source = read_real("tutorial/apc2016_obj3.json")
    image = load_labelme_image(source, ProblemLog(strict=True))
    raw = raw_document("tutorial/apc2016_obj3.json")
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


def test_missing_image_names_the_json_and_the_paths_tried() -> None:
    annotation = read_real("legacy_pre_61f5fee4/2011_000003.json")  # no .jpg shipped
    with pytest.raises(DataError, match=r"2011_000003\.json: image not found.*2011_000003\.\{jpg"):
        load_labelme_image(annotation, ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    assert load_labelme_image(annotation, problems) is None
    assert len(problems) == 1 and problems.problems[0].skipped == "file"


def test_size_comes_from_image_data_when_not_declared(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    path = write_json(
        tmp_path, [GOOD_A], imageData=png_b64(pixels), imageHeight=None, imageWidth=None
    )
    annotation = read_labelme(path, problems=ProblemLog(strict=True))
    assert annotation is not None and (annotation.height, annotation.width) == (16, 24)
    np.testing.assert_array_equal(load_labelme_image(annotation, ProblemLog(strict=True)), pixels)
    assert rasterize_annotation(annotation).shape == (16, 24, 4)


def test_size_comes_from_sibling_image_with_windows_image_path(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((12, 18, 3), dtype=np.uint8)).save(tmp_path / "images" / "eye.png")
    path = write_json(
        tmp_path, [GOOD_A], imagePath="images\\eye.png", imageHeight=None, imageWidth=None
    )
    annotation = read_labelme(path, problems=ProblemLog(strict=True))
    assert annotation is not None
    assert annotation.image_path == tmp_path / "images" / "eye.png"
    assert (annotation.height, annotation.width) == (12, 18)


def test_undecodable_image_data_keeps_the_shapes(tmp_path: Path) -> None:
    path = write_json(
        tmp_path, [GOOD_A, GOOD_B], name="bad_data.json", imageData="bm90IGFuIGltYWdl"
    )
    with pytest.raises(DataError, match=r"bad_data\.json: imageData cannot be decoded"):
        read_labelme(path, problems=ProblemLog(strict=True))
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and annotation.image_data is None
    assert len(annotation.shapes) == 2 and (annotation.height, annotation.width) == (40, 50)
    assert [p.skipped for p in problems.problems] == ["imageData"]


def test_declared_size_contradicting_image_data_is_reported(tmp_path: Path) -> None:
    image = png_b64(np.zeros((16, 24, 3), dtype=np.uint8))
    path = write_json(tmp_path, [GOOD_A], name="sized.json", imageData=image)
    problems = ProblemLog(strict=False)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None and (annotation.height, annotation.width) == (16, 24)
    assert "say 50x40 but the embedded image is 24x16" in problems.problems[0].reason
