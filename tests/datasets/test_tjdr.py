import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.release_mask import (
    channels_to_release_mask,
    read_release_mask,
    release_mask_to_channels,
    release_palette_image,
)
from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.lesions import (
    IGNORE_INDEX,
    LESIONS,
    RELEASE_INDEX,
    RELEASE_PALETTE,
    RELEASE_PRIORITY,
)
from tests.conftest import shared_path


def palette_png(path: Path, index_mask: np.ndarray) -> None:
    image = Image.fromarray(index_mask.astype(np.uint8), mode="P")
    image.putpalette([v for rgb in RELEASE_PALETTE for v in rgb] + [0] * (768 - 15))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def rgb_png(path: Path, size=(40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 120, np.uint8)).save(path)


def make_release(root: Path, n: int = 3) -> None:
    for i in range(1, n + 1):
        rgb_png(root / "train" / "image" / f"{i:03d}.png")
        index = np.zeros((40, 40), np.uint8)
        index[5:10, 5:10] = i % 5
        palette_png(root / "train" / "annotation" / f"{i:03d}.png", index)


def test_release_indices_are_remapped_to_project_order():
    index = np.array([[0, 1, 2], [3, 4, 0]])
    channels = release_mask_to_channels(index)
    for name, value in RELEASE_INDEX.items():
        assert channels[..., LESIONS.index(name)].tolist() == (index == value).tolist()
    with pytest.raises(DataError, match=r"x\.png.*\[7\]"):
        release_mask_to_channels(np.array([[7]]), "x.png")


def test_real_sample_masks_equal_png_indices():
    root = shared_path("tjdr_sample")
    dataset = TJDRDataset(root, "train", image_size=None, crop_fov=False)
    assert [r.name for r in dataset.records] == ["001", "002", "003", "004"]
    for i, record in enumerate(dataset.records):
        index = np.asarray(Image.open(record.annotation))
        sample = dataset[i]
        assert sample["image"].shape == (*index.shape, 3)
        for name, value in RELEASE_INDEX.items():
            assert np.array_equal(sample["mask"][..., LESIONS.index(name)], index == value)
        assert sample["grade"] == -1  # TJDR ships no grades
    assert len(TJDRDataset(root, "test")) == 2


def test_real_sample_preprocessed_keeps_every_lesion_type():
    root = shared_path("tjdr_sample")
    dataset = TJDRDataset(root, "train", image_size=256)
    full = TJDRDataset(root, "train", image_size=None, crop_fov=False)
    for i in range(len(dataset)):
        small, big = dataset[i]["mask"], full[i]["mask"]
        assert small.shape == (256, 256, 4)
        assert (small.reshape(-1, 4).max(0) == big.reshape(-1, 4).max(0)).all()


def test_missing_partner_and_size_mismatch_are_reported_and_skipped(tmp_path):
    make_release(tmp_path)
    (tmp_path / "train" / "annotation" / "002.png").unlink()
    rgb_png(tmp_path / "train" / "image" / "003.png", size=(50, 40))
    palette_png(tmp_path / "train" / "annotation" / "009.png", np.zeros((4, 4)))
    dataset = TJDRDataset(tmp_path, "train")
    assert [r.name for r in dataset.records] == ["001"]
    text = dataset.problems.summary()
    assert "002.png: no annotation found" in text
    assert "003.png" in text and "differs from its image" in text
    assert "009.png: annotation has no image" in text
    with pytest.raises(DataError, match="002.png: no annotation found"):
        TJDRDataset(tmp_path, "train", strict=True)


def test_bad_palette_index_and_truncated_image_cost_one_sample(tmp_path):
    make_release(tmp_path, n=4)
    index = np.zeros((40, 40), np.uint8)
    index[0, 0] = 9
    palette_png(tmp_path / "train" / "annotation" / "002.png", index)
    image_path = tmp_path / "train" / "image" / "003.png"
    noise = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(noise).save(image_path)
    image_path.write_bytes(image_path.read_bytes()[:2000])  # truncated mid-stream
    dataset = TJDRDataset(tmp_path, "train", cache_dir=tmp_path / "cache")
    dataset.verify()
    assert [r.name for r in dataset.records] == ["001", "004"]
    text = dataset.problems.summary()
    assert "002.png: palette index [9]" in text
    assert "003.png" in text
    strict = TJDRDataset(tmp_path, "train", strict=True)
    with pytest.raises(DataError, match="002.png"):
        strict.verify()


def test_grades_csv_is_read_and_bad_rows_reported(tmp_path):
    make_release(tmp_path)
    (tmp_path / "train" / "grades.csv").write_text("image,grade\n001,3\n002,x\n003,7\n")
    dataset = TJDRDataset(tmp_path, "train")
    assert [r.grade for r in dataset.records] == [3, -1, -1]
    assert len(dataset.problems) == 2


def test_cache_is_reused_and_invalidated_by_content(tmp_path):
    make_release(tmp_path, n=1)
    cache = tmp_path / "cache"
    dataset = TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)
    first = dataset[0]["mask"]
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    assert np.array_equal(
        TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)[0]["mask"], first
    )
    index = np.zeros((40, 40), np.uint8)
    index[20:30, 20:30] = RELEASE_INDEX["SE"]
    palette_png(tmp_path / "train" / "annotation" / "001.png", index)
    changed = TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)[0]["mask"]
    assert len(list(cache.glob("*.npz"))) == 2
    assert changed[..., LESIONS.index("SE")].any() and not np.array_equal(changed, first)


def test_files_are_hashed_once_until_they_change(tmp_path, monkeypatch):
    import multitask_dr.datasets.tjdr as tjdr

    make_release(tmp_path, n=2)
    hashed = []
    real = tjdr.file_digest
    monkeypatch.setattr(tjdr, "file_digest", lambda *paths: hashed.append(paths) or real(*paths))
    cache = tmp_path / "cache"
    dataset = TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)
    for _ in range(3):
        for i in range(len(dataset)):
            dataset[i]
    # A second dataset over the same files (the datamodule builds several) hashes nothing.
    TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)[0]
    assert len(hashed) == 2
    # Same size, new content and modification time: hashed again, a new cache entry.
    annotation = tmp_path / "train" / "annotation" / "001.png"
    index = np.zeros((40, 40), np.uint8)
    index[5:10, 5:10] = RELEASE_INDEX["SE"]
    palette_png(annotation, index)
    stat = annotation.stat()
    os.utime(annotation, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = dataset[0]["mask"]
    assert len(hashed) == 3
    assert changed[..., LESIONS.index("SE")].any()
    assert len(list(cache.glob("*.npz"))) == 3


def test_missing_split_folder(tmp_path):
    with pytest.raises(DataError, match="split folder does not exist"):
        TJDRDataset(tmp_path, "train")
    shutil.rmtree(tmp_path)


def test_overlaps_collapse_by_release_priority():
    assert sorted(RELEASE_PRIORITY) == sorted(LESIONS)
    mask = np.zeros((1, 6, 4), np.uint8)
    ma, he, ex, se = (LESIONS.index(k) for k in ("MA", "HE", "EX", "SE"))
    mask[0, 0, [ma, he]] = 1
    mask[0, 1, [he, ex]] = 1
    mask[0, 2, [he, se]] = 1
    mask[0, 3, [ex, se]] = 1
    mask[0, 4] = 1
    mask[0, 5] = IGNORE_INDEX  # unscored: background in a one-index file
    index = channels_to_release_mask(mask)
    assert index.dtype == np.uint8
    names = ["MA", "EX", "HE", "EX", "MA"]
    assert index[0].tolist() == [RELEASE_INDEX[k] for k in names] + [0]
    # Without overlaps nothing is lost: the release reader gives the channels back.
    single = np.zeros((3, 4, 4), np.uint8)
    for channel in range(4):
        single[channel % 3, channel, channel] = 1
    np.testing.assert_array_equal(
        release_mask_to_channels(channels_to_release_mask(single)), single
    )


def test_release_palette_image_round_trips_through_the_reader(tmp_path):
    index = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
    path = tmp_path / "mask.png"
    release_palette_image(index).save(path)
    with Image.open(path) as image:
        assert image.mode == "P" and np.array_equal(np.asarray(image), index)
        assert image.getpalette()[:15] == [v for rgb in RELEASE_PALETTE for v in rgb]
    np.testing.assert_array_equal(read_release_mask(path), release_mask_to_channels(index))


def make_labelme(root: Path) -> None:
    """One 40x40 image with a Labelme square [10, 20]^2 (HE) beside it, and no PNG."""
    rgb_png(root / "train" / "image" / "001.png")
    shape = {"label": "HE", "points": [[10, 10], [20, 10], [20, 20], [10, 20]]}
    document = {"version": "5.7.0", "shapes": [shape | {"shape_type": "polygon"}]}
    document |= {"imagePath": "001.png", "imageHeight": 40, "imageWidth": 40}
    (root / "train" / "image" / "001.json").write_text(json.dumps(document))


def test_rasterize_rule_changes_the_labelme_masks_and_the_cache_key(tmp_path):
    make_labelme(tmp_path)
    cache = tmp_path / "cache"
    kwargs = {"annotation": "labelme", "crop_fov": False, "cache_dir": cache}
    default = TJDRDataset(tmp_path, "train", **kwargs)
    centre = TJDRDataset(tmp_path, "train", rasterize="pixel_centre", **kwargs)
    he = LESIONS.index("HE")
    assert (default[0]["mask"][..., he] == 1).sum() == 11 * 11  # Labelme: both ends included
    assert (centre[0]["mask"][..., he] == 1).sum() == 10 * 10  # the square's area
    record = default.records[0]
    assert default.cache_key(record) != centre.cache_key(record)
    assert len(list(cache.glob("*.npz"))) == 2
    # Each reads its own cache entry back.
    again = TJDRDataset(tmp_path, "train", rasterize="pixel_centre", **kwargs)
    assert (again[0]["mask"][..., he] == 1).sum() == 100
    with pytest.raises(ValueError, match="unknown rasterize rule 'pil'"):
        TJDRDataset(tmp_path, "train", rasterize="pil")  # type: ignore[arg-type]


def test_release_png_cache_key_ignores_the_rule(tmp_path):
    make_release(tmp_path, n=1)
    default = TJDRDataset(tmp_path, "train")
    centre = TJDRDataset(tmp_path, "train", rasterize="pixel_centre")
    assert default.cache_key(default.records[0]) == centre.cache_key(centre.records[0])


def test_tjdr_and_predict_folders_accept_the_same_image_files(tmp_path):
    from PIL import Image

    from multitask_dr.datasets.folder import ImageFolderDataset
    from multitask_dr.datasets.images import IMAGE_SUFFIXES
    from multitask_dr.datasets.problems import ProblemLog
    from multitask_dr.datasets.tjdr_records import find_records

    split = tmp_path / "train"
    (split / "image").mkdir(parents=True)
    (split / "annotation").mkdir()
    pixels = np.full((16, 16, 3), 120, dtype=np.uint8)
    for index, suffix in enumerate(IMAGE_SUFFIXES):
        Image.fromarray(pixels).save(split / "image" / f"{index:03d}{suffix}")
        Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").convert("P").save(
            split / "annotation" / f"{index:03d}.png"
        )
    problems = ProblemLog()
    records = find_records(split, "png", problems)
    assert [r.image.suffix for r in records] == list(IMAGE_SUFFIXES) and len(problems) == 0
    assert len(ImageFolderDataset(str(split / "image"), 16)) == len(IMAGE_SUFFIXES)
