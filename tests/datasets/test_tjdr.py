import shutil

import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.lesions import (
    LESIONS,
    RELEASE_INDEX,
)
from tests.conftest import shared_path
from tests.datasets.tjdr_files import make_labelme, make_release, palette_png


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


def test_missing_split_folder(tmp_path):
    with pytest.raises(DataError, match="split folder does not exist"):
        TJDRDataset(tmp_path, "train")
    shutil.rmtree(tmp_path)


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
