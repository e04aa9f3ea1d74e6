import numpy as np

from multitask_dr.datasets.preprocess import crop_and_resize, fov_bbox, resize_mask
from multitask_dr.lesions import IGNORE_INDEX


def fundus(size: int = 200, offset: int = 30) -> np.ndarray:
    image = np.zeros((size, size + 2 * offset, 3), np.uint8)
    yy, xx = np.mgrid[:size, : size + 2 * offset]
    inside = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 - offset + 0.5) ** 2 < (size / 2 - 5) ** 2
    image[inside] = (180, 80, 40)
    return image


def test_fov_bbox_finds_the_circle():
    top, left, bottom, right = fov_bbox(fundus())
    assert (top, bottom) == (5, 195)
    assert (left, right) == (35, 225)


def test_max_pool_downsampling_keeps_a_single_pixel_lesion():
    mask = np.zeros((1024, 1024, 4), np.uint8)
    mask[501, 733, 0] = 1  # one microaneurysm pixel
    small = resize_mask(mask, 128)
    assert small.shape == (128, 128, 4)
    assert small[..., 0].sum() == 1
    assert small[501 * 128 // 1024, 733 * 128 // 1024, 0] == 1
    assert small[..., 1:].sum() == 0


def test_downsampling_ignore_needs_majority_and_never_hides_lesions():
    mask = np.zeros((8, 8, 1), np.uint8)
    mask[:4, :4] = IGNORE_INDEX  # whole top-left output pixel ignored
    mask[4:6, :4] = IGNORE_INDEX  # half of bottom-left: not a majority
    mask[0, 4:] = IGNORE_INDEX
    mask[1, 4] = 1  # top-right: mostly scored, has a lesion
    small = resize_mask(mask, 2)[..., 0]
    assert small.tolist() == [[IGNORE_INDEX, 1], [0, 0]]


def test_crop_then_resize_is_square_and_aligned():
    image = fundus()
    mask = np.zeros((*image.shape[:2], 4), np.uint8)
    mask[100, 130, 2] = 1  # centre of the FOV
    out_image, out_mask = crop_and_resize(image, mask, 64)
    assert out_image.shape == (64, 64, 3) and out_mask.shape == (64, 64, 4)
    rows, cols = np.nonzero(out_mask[..., 2])
    assert abs(rows.mean() - 31.5) <= 1 and abs(cols.mean() - 31.5) <= 1
    assert out_image[0, 0].max() == 0  # corners stay black
