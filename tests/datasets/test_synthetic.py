import csv
import json
import math
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Point, Polygon, box

from multitask_dr.datasets.labelme import rasterize_annotation, read_labelme
from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.datasets.rasterize import disc
from multitask_dr.datasets.release_mask import channels_to_release_mask
from multitask_dr.datasets.synthetic.cli import main
from multitask_dr.datasets.synthetic.grade import Lesion, Phantom, grade_from_lesions
from multitask_dr.datasets.synthetic.masks import lesion_mask, lesion_masks, release_mask
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import (
    DEFAULT_GRADE_PROBS,
    MIN_MA_RADIUS,
    image_rng,
    sample_grade,
)
from multitask_dr.datasets.synthetic.writers import write_retinamnist, write_synthetic, write_tjdr
from multitask_dr.lesions import LESIONS, RELEASE_INDEX, RELEASE_PALETTE, RELEASE_PRIORITY
from tests.conftest import shared_path
from tests.datasets import labelme_reference

FOV = (50.0, 50.0, 45.0)


def blob(kind, x, y, r=2.0):
    return Lesion(kind, Point(x, y).buffer(r))


def he_in(quadrants, fov=FOV, offset=15.0):
    """One HE centred in each named quadrant: 0 UL, 1 UR, 2 LL, 3 LR."""
    cx, cy = fov[:2]
    centres = {0: (-1, -1), 1: (1, -1), 2: (-1, 1), 3: (1, 1)}
    return [
        blob("HE", cx + sx * offset, cy + sy * offset) for sx, sy in (centres[q] for q in quadrants)
    ]


def pixel_centre_distance(shape, fov):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return np.hypot(xs - fov[0], ys - fov[1])


@pytest.fixture(scope="module")
def phantoms():
    """Three eyes of each grade at 96 px (rendered once for the module)."""
    return {
        g: [render_phantom(96, g, np.random.default_rng(10 * g + k)) for k in range(3)]
        for g in range(5)
    }


@pytest.fixture(scope="module")
def tjdr_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tjdr")
    # Mostly severe eyes, so every lesion type and overlaps occur in few images.
    return write_tjdr(root, n_train=4, n_test=2, size=96, seed=3, grade_probs=(1, 1, 2, 3, 3))


# ---------------------------------------------------------------------------- grade rule


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


# ---------------------------------------------------------------------------- phantoms


def test_every_phantom_has_its_requested_grade(phantoms):
    for grade, eyes in phantoms.items():
        for eye in eyes:
            assert isinstance(eye, Phantom)
            assert eye.grade == grade
            assert grade_from_lesions(eye.lesions, eye.fov) == (grade, eye.deciding_lesion)
            counts = Counter(lesion.kind for lesion in eye.lesions)
            if grade == 0:
                assert not eye.lesions and eye.deciding_lesion is None
            if grade == 1:
                assert set(counts) == {"MA"}
            if grade == 2:
                # The decider wins clearly, not by a tie-break.
                others = [counts[k] for k in ("HE", "EX", "SE") if k != eye.deciding_lesion]
                assert counts[eye.deciding_lesion] > max(others)


def test_grade_two_decider_is_clear_and_varies():
    deciders = Counter()
    for seed in range(40):
        eye = render_phantom(64, 2, np.random.default_rng(seed))
        counts = Counter(lesion.kind for lesion in eye.lesions)
        others = [counts[k] for k in ("HE", "EX", "SE") if k != eye.deciding_lesion]
        # Clearly dominant: alone, or ahead by at least 2 instances.
        assert max(others) == 0 or counts[eye.deciding_lesion] >= max(others) + 2, counts
        deciders[eye.deciding_lesion] += 1
    assert set(deciders) == {"HE", "EX", "SE"}


def test_image_looks_like_a_fundus(phantoms):
    for eye in (e for eyes in phantoms.values() for e in eyes):
        image = eye.image
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
            assert corner.tolist() == [0, 0, 0]
        dist = pixel_centre_distance(image.shape, eye.fov)
        assert not image[dist >= eye.fov[2]].any(), "pixels outside the FOV must be exactly 0"
        # Bright enough everywhere inside that FOV detection (threshold 12) finds the circle.
        assert image[dist < eye.fov[2] - 1].max(axis=1).min() > 12
        retina = image[dist < 0.8 * eye.fov[2]].reshape(-1, 3).mean(axis=0)
        assert retina[0] > retina[1] > retina[2], "retina should be orange-red"
        # The optic disc is the brightest structure.
        dx, dy, dr = eye.optic_disc
        disc = image[pixel_centre_distance(image.shape, (dx, dy)) < 0.5 * dr].mean()
        assert disc > image[dist < eye.fov[2]].mean() + 40


def test_lesions_lie_inside_the_fov_and_off_the_disc(phantoms):
    for eye in (e for eyes in phantoms.values() for e in eyes):
        cx, cy, radius = eye.fov
        fov_disc = Point(cx, cy).buffer(radius, quad_segs=64)
        for lesion in eye.lesions:
            assert fov_disc.contains(lesion.geometry)
            assert not lesion.geometry.intersects(
                Point(*eye.optic_disc[:2]).buffer(eye.optic_disc[2])
            )
        dist = pixel_centre_distance(eye.image.shape, eye.fov)
        assert not lesion_masks(eye)[dist >= radius].any()


def test_microaneurysms_survive_at_64_px():
    for seed in range(5):
        eye = render_phantom(64, 1, np.random.default_rng(seed))
        mas = [lesion for lesion in eye.lesions if lesion.kind == "MA"]
        assert mas
        for lesion in mas:
            (cx, cy), (rx, _) = lesion.circle
            assert rx - cx >= MIN_MA_RADIUS - 1e-9
            assert lesion_mask(lesion, 64, 64).sum() >= 4


def test_lesions_are_painted_where_their_masks_are():
    eye = render_phantom(256, 4, np.random.default_rng(7))
    masks = lesion_masks(eye)
    any_lesion = masks.any(axis=2)
    ring = cv2.dilate(any_lesion.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ring &= ~cv2.dilate(any_lesion.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    background = eye.image[ring].astype(float).mean(axis=0)
    image = eye.image.astype(float)
    checked = 0
    for channel, kind in enumerate(LESIONS):
        only = masks[..., channel].astype(bool) & (masks.sum(axis=2) == 1)
        if only.sum() < 5:
            continue
        inside = image[only].mean(axis=0)
        if kind in ("MA", "HE"):  # dark red: much less green
            assert inside[1] < 0.75 * background[1], kind
        else:  # exudates are brighter, above all in green
            assert inside[1] > background[1] + 25, kind
        checked += 1
    assert checked >= 3


def test_release_mask_agrees_with_lesion_masks(phantoms):
    for eye in phantoms[4] + phantoms[3]:
        index, masks = release_mask(eye), lesion_masks(eye)
        assert index.dtype == np.uint8 and masks.dtype == np.uint8
        assert set(np.unique(index)) <= {0, 1, 2, 3, 4} and set(np.unique(masks)) <= {0, 1}
        assert np.array_equal(index > 0, masks.any(axis=2))
        single = masks.sum(axis=2) == 1
        for channel, kind in enumerate(LESIONS):
            sel = single & (masks[..., channel] == 1)
            assert (index[sel] == RELEASE_INDEX[kind]).all()
        # Overlaps: the first present lesion of RELEASE_PRIORITY.
        for r, c in zip(*np.nonzero(masks.sum(axis=2) > 1), strict=True):
            first = next(k for k in RELEASE_PRIORITY if masks[r, c, LESIONS.index(k)])
            assert index[r, c] == RELEASE_INDEX[first]


def test_render_rejects_bad_arguments():
    with pytest.raises(ValueError, match="grade"):
        render_phantom(64, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="size"):
        render_phantom(16, 0, np.random.default_rng(0))


# ---------------------------------------------------------------------------- randomness


def test_grade_distribution_follows_grade_probs():
    n = 4000
    for probs in (DEFAULT_GRADE_PROBS, (0.1, 0.1, 0.1, 0.2, 0.5)):
        grades = [sample_grade(image_rng(0, "retinamnist", "train", i), probs) for i in range(n)]
        freq = np.bincount(grades, minlength=5) / n
        assert np.abs(freq - np.array(probs) / sum(probs)).max() < 0.03, freq


def test_grade_probs_are_validated(tmp_path):
    for bad in ((1, 2, 3), (0.5, 0.5, -0.1, 0, 0), (0, 0, 0, 0, 0)):
        with pytest.raises(ValueError, match="grade_probs"):
            write_tjdr(tmp_path, n_train=1, n_test=0, size=64, grade_probs=bad)


def test_image_rng_streams_differ():
    draws = {
        (d, s, i): image_rng(0, d, s, i).integers(0, 2**62)
        for d in ("tjdr", "retinamnist")
        for s in ("train", "test")
        for i in range(3)
    }
    assert len(set(draws.values())) == len(draws)
    assert image_rng(0, "tjdr", "train", 1).integers(0, 2**62) == draws[("tjdr", "train", 1)]


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


# ---------------------------------------------------------------------------- TJDR files


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


# ---------------------------------------------------------------------------- RetinaMNIST files


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


# ---------------------------------------------------------------------------- entry points


def test_cli_writes_both_datasets(tmp_path, capsys):
    out = tmp_path / "synthetic"
    args = ["--out", str(out), "--seed", "2", "--n-train", "2", "--n-test", "1", "--size", "64"]
    args += [
        "--retina-sizes",
        "28",
        "64",
        "--retina-n-train",
        "3",
        "--retina-n-val",
        "1",
        "--retina-n-test",
        "2",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "tjdr" / "train" / "image").iterdir()) == [
        "001.json",
        "001.png",
        "002.json",
        "002.png",
    ]
    assert (out / "tjdr" / "test" / "annotation" / "001.png").is_file()
    with np.load(out / "retinamnist" / "retinamnist_64.npz") as data:
        assert data["train_images"].shape == (3, 64, 64, 3) and data["test_labels"].shape == (2, 1)
    assert (out / "retinamnist" / "retinamnist.npz").is_file()
    assert "retinamnist_64.npz" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--retina-sizes", "30"])


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


def test_release_mask_keeps_the_smaller_lesion_whatever_the_order():
    big, dot = blob("HE", 20, 20, r=6), Lesion.from_circle("MA", (20, 20), 2)
    image = np.zeros((40, 40, 3), np.uint8)
    on_top = release_mask(Phantom(image, [big, dot], 2, "HE", (20, 20, 19)))
    below = release_mask(Phantom(image, [dot, big], 2, "HE", (20, 20, 19)))
    np.testing.assert_array_equal(on_top, below)
    assert on_top[20, 20] == RELEASE_INDEX["MA"]  # MA comes before HE in RELEASE_PRIORITY
    masks = lesion_masks(Phantom(image, [big, dot], 2, "HE", (20, 20, 19)))
    assert masks[20, 20].tolist() == [1, 1, 0, 0]  # MA and HE both kept
    assert (on_top == RELEASE_INDEX["MA"]).sum() == masks[..., 0].sum()
    assert (on_top > 0).sum() == masks.any(axis=2).sum()
