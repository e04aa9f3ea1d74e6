import csv
import json
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Polygon

from multitask_dr.datasets.labelme import rasterize_annotation, read_labelme
from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.datasets.release_mask import channels_to_release_mask
from multitask_dr.datasets.synthetic.masks import release_mask
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import (
    image_rng,
    sample_grade,
)
from multitask_dr.datasets.synthetic.writers import write_retinamnist, write_synthetic, write_tjdr
from multitask_dr.lesions import LESIONS, RELEASE_PALETTE
from tests.conftest import shared_path
from tests.datasets import labelme_reference


def tree_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_different_seed_different_images(tmp_path):
    kwargs = {"n_train": 2, "n_test": 1, "size": 64}
    a = tree_bytes(write_tjdr(tmp_path / "a", seed=5, **kwargs))
    b = tree_bytes(write_tjdr(tmp_path / "b", seed=5, **kwargs))
    c = tree_bytes(write_tjdr(tmp_path / "c", seed=6, **kwargs))
    assert a == b
    assert a.keys() == c.keys()
    assert a["train/image/001.png"] != c["train/image/001.png"]
    # More images never change the earlier ones.
    longer = tree_bytes(write_tjdr(tmp_path / "d", seed=5, n_train=3, n_test=1, size=64))
    for name in (
        "train/image/001.png",
        "train/image/002.png",
        "train/annotation/002.png",
        "test/image/001.json",
    ):
        assert longer[name] == a[name]

    r1 = write_retinamnist(tmp_path / "r1", sizes=(28,), n_train=3, n_val=1, n_test=1, seed=5)
    r2 = write_retinamnist(tmp_path / "r2", sizes=(28,), n_train=3, n_val=1, n_test=1, seed=5)
    r3 = write_retinamnist(tmp_path / "r3", sizes=(28,), n_train=3, n_val=1, n_test=1, seed=6)
    assert r1[0].read_bytes() == r2[0].read_bytes() != r3[0].read_bytes()


def test_tjdr_layout_and_annotation_format(tjdr_root):
    palette = [v for rgb in RELEASE_PALETTE for v in rgb]
    palette += [0] * (768 - len(palette))
    for split, n in (("train", 4), ("test", 2)):
        images = sorted((tjdr_root / split / "image").glob("*.png"))
        annotations = sorted((tjdr_root / split / "annotation").glob("*.png"))
        stems = [f"{i:03d}" for i in range(1, n + 1)]
        assert [p.stem for p in images] == [p.stem for p in annotations] == stems
        for image_path, annotation_path in zip(images, annotations, strict=True):
            with Image.open(image_path) as image, Image.open(annotation_path) as annotation:
                assert image.mode == "RGB" and image.size == (96, 96)
                assert annotation.mode == "P" and annotation.size == image.size
                assert annotation.getpalette() == palette
                assert set(np.unique(np.asarray(annotation))) <= {0, 1, 2, 3, 4}


def test_tjdr_files_match_a_re_rendered_phantom(tjdr_root):
    rows = list(csv.DictReader((tjdr_root / "test" / "grades.csv").open(newline="")))
    assert [r["image"] for r in rows] == ["001", "002"]
    for index, row in enumerate(rows):
        rng = image_rng(3, "tjdr", "test", index)
        eye = render_phantom(96, sample_grade(rng, (1, 1, 2, 3, 3)), rng)
        stem = row["image"]
        assert np.array_equal(
            np.asarray(Image.open(tjdr_root / "test" / "image" / f"{stem}.png")), eye.image
        )
        assert np.array_equal(
            np.asarray(Image.open(tjdr_root / "test" / "annotation" / f"{stem}.png")),
            release_mask(eye),
        )
        assert int(row["grade"]) == eye.grade
        assert row["deciding_lesion"] == (eye.deciding_lesion or "")


def test_grades_csv(tjdr_root):
    for split in ("train", "test"):
        text = (tjdr_root / split / "grades.csv").read_text()
        assert text.splitlines()[0] == "image,grade,deciding_lesion"
        for row in csv.DictReader(text.splitlines()):
            grade = int(row["grade"])
            assert 0 <= grade <= 4
            assert row["deciding_lesion"] == "" if grade == 0 else row["deciding_lesion"] in LESIONS
    grades = [int(r["grade"]) for r in csv.DictReader((tjdr_root / "train" / "grades.csv").open())]
    assert max(grades) >= 2


def read_labelme_masks(path, height, width):
    # The project's own Labelme reader: what a user loading the JSON gets.
    annotation = read_labelme(path, problems=ProblemLog(strict=True))
    return rasterize_annotation(annotation, height=height, width=width)


def test_labelme_json_schema(tjdr_root):
    n_shapes = Counter()
    for path in sorted((tjdr_root / "train" / "image").glob("*.json")):
        doc = json.loads(path.read_text())
        assert list(doc) == [
            "version",
            "flags",
            "shapes",
            "imagePath",
            "imageData",
            "imageHeight",
            "imageWidth",
        ]
        assert doc["version"] == "5.7.0" and doc["flags"] == {} and doc["imageData"] is None
        assert doc["imagePath"] == f"{path.stem}.png"
        assert (doc["imageHeight"], doc["imageWidth"]) == (96, 96)
        for shape in doc["shapes"]:
            assert list(shape) == [
                "label",
                "points",
                "group_id",
                "description",
                "shape_type",
                "flags",
                "mask",
            ]
            assert shape["label"] in LESIONS
            assert shape["group_id"] is None and shape["mask"] is None and shape["flags"] == {}
            points = shape["points"]
            assert all(round(v, 2) == v for point in points for v in point)
            if shape["label"] == "MA":
                assert shape["shape_type"] == "circle" and len(points) == 2
            else:
                assert shape["shape_type"] == "polygon" and len(points) >= 3
                assert Polygon(points).is_valid
            n_shapes[shape["shape_type"]] += 1
    assert n_shapes["circle"] > 0 and n_shapes["polygon"] > 0


def test_labelme_json_and_palette_png_give_the_same_masks(tjdr_root):
    # Reading the JSON with the default rule gives Labelme's own masks of it, and collapsing
    # them by RELEASE_PRIORITY gives the palette PNG: everywhere, overlaps included.
    lesion_of = {kind: kind for kind in LESIONS}
    compared = overlaps = 0
    for split in ("train", "test"):
        for json_path in sorted((tjdr_root / split / "image").glob("*.json")):
            index = np.asarray(
                Image.open(tjdr_root / split / "annotation" / f"{json_path.stem}.png")
            )
            masks = read_labelme_masks(json_path, *index.shape)
            document = json.loads(json_path.read_text())
            expected = labelme_reference.file_masks(document, lesion_of, *index.shape)
            np.testing.assert_array_equal(masks, expected)
            np.testing.assert_array_equal(channels_to_release_mask(masks), index)
            compared += int((index > 0).sum())
            overlaps += int((masks.sum(axis=2) > 1).sum())
    assert compared > 100 and overlaps > 0


def test_rewriting_removes_stale_files(tmp_path):
    write_tjdr(tmp_path, n_train=3, n_test=1, size=64)
    write_tjdr(tmp_path, n_train=2, n_test=1, size=64, labelme=False)
    assert sorted(p.name for p in (tmp_path / "train" / "image").iterdir()) == [
        "001.png",
        "002.png",
    ]
    assert sorted(p.name for p in (tmp_path / "train" / "annotation").iterdir()) == [
        "001.png",
        "002.png",
    ]
    assert len((tmp_path / "train" / "grades.csv").read_text().splitlines()) == 3


def test_retinamnist_files(tmp_path):
    sizes = (28, 64, 224)
    paths = write_retinamnist(
        tmp_path, sizes=sizes, n_train=4, n_val=2, n_test=3, seed=1, grade_probs=(0, 0, 0, 1, 1)
    )
    assert [p.name for p in paths] == [
        "retinamnist.npz",
        "retinamnist_64.npz",
        "retinamnist_224.npz",
    ]
    data = {size: np.load(path) for size, path in zip(sizes, paths, strict=True)}
    for size, arrays in data.items():
        for split, n in (("train", 4), ("val", 2), ("test", 3)):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            assert images.shape == (n, size, size, 3) and images.dtype == np.uint8
            assert labels.shape == (n, 1) and labels.dtype == np.uint8
            assert set(labels.ravel().tolist()) <= {3, 4}
            assert (images[:, 0, 0] == 0).all()
    # The same eyes at every size: the small files are area-resized 224 px images.
    big, small = data[224]["val_images"], data[28]["val_images"]
    for i in range(len(big)):
        assert np.array_equal(cv2.resize(big[i], (28, 28), interpolation=cv2.INTER_AREA), small[i])
    assert np.array_equal(data[28]["test_labels"], data[224]["test_labels"])
    # Labels are the grades of the per-image generators.
    expected = [
        sample_grade(image_rng(1, "retinamnist", "train", i), (0, 0, 0, 1, 1)) for i in range(4)
    ]
    assert data[64]["train_labels"].ravel().tolist() == expected


def test_retinamnist_npz_matches_the_official_file(tmp_path):
    real_path = shared_path("retinamnist", "retinamnist.npz")
    (ours_path,) = write_retinamnist(tmp_path, sizes=(28,), n_train=2, n_val=1, n_test=1)
    with np.load(real_path) as real, np.load(ours_path) as ours:
        assert ours.files == real.files
        for key in real.files:
            assert ours[key].dtype == real[key].dtype, key
            assert ours[key].shape[1:] == real[key].shape[1:], key
    # Same container: deflated entries, as medmnist's own files.
    with zipfile.ZipFile(real_path) as real, zipfile.ZipFile(ours_path) as ours:
        assert {i.compress_type for i in ours.infolist()} == {
            i.compress_type for i in real.infolist()
        }


def test_retinamnist_rejects_unknown_size(tmp_path):
    with pytest.raises(ValueError, match="28, 64, 128, 224"):
        write_retinamnist(tmp_path, sizes=(32,), n_train=1, n_val=1, n_test=1)


def test_write_synthetic_returns_both_roots(tmp_path):
    paths = write_synthetic(
        tmp_path,
        seed=1,
        n_train=1,
        n_test=1,
        size=64,
        labelme=False,
        retina_sizes=(28,),
        retina_n_train=1,
        retina_n_val=1,
        retina_n_test=1,
    )
    assert paths == {"tjdr": tmp_path / "tjdr", "retinamnist": tmp_path / "retinamnist"}
    assert not list((tmp_path / "tjdr" / "train" / "image").glob("*.json"))
    assert (tmp_path / "retinamnist" / "retinamnist.npz").is_file()
