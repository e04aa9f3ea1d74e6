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
from multitask_dr.lesions import (
    IGNORE_INDEX,
    LESIONS,
    RELEASE_INDEX,
    RELEASE_PALETTE,
    RELEASE_PRIORITY,
)


def test_release_indices_are_remapped_to_project_order():
    index = np.array([[0, 1, 2], [3, 4, 0]])
    channels = release_mask_to_channels(index)
    for name, value in RELEASE_INDEX.items():
        assert channels[..., LESIONS.index(name)].tolist() == (index == value).tolist()
    with pytest.raises(DataError, match=r"x\.png.*\[7\]"):
        release_mask_to_channels(np.array([[7]]), "x.png")


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
