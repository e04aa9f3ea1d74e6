"""Field-of-view cropping and lesion-preserving resizing.

Order (documented in docs/data.md, "Preprocessing order"): **crop to the retina's bounding
circle first, then resize** to the working resolution. Images are resized with area averaging;
lesion masks with **max-pooling** (a low-resolution pixel is a lesion when any high-resolution
pixel under it is), so a 3-pixel microaneurysm in a 2048² photo survives at 512² instead of
vanishing as it would under nearest-neighbour sampling.
"""

from __future__ import annotations

import cv2
import numpy as np

from multitask_dr.lesions import IGNORE_INDEX

#: Pixels brighter than this (max over RGB) count as retina when locating the field of view.
FOV_THRESHOLD = 12


def fov_bbox(image: np.ndarray, threshold: int = FOV_THRESHOLD) -> tuple[int, int, int, int]:
    """Bounding box of the circular field of view.

    Args:
        image: ``(H, W, 3)`` uint8 fundus photograph with a dark surround.
        threshold: Minimum channel maximum for a pixel to count as retina.

    Returns:
        ``(top, left, bottom, right)``, exclusive ends; the whole image when nothing is bright.
    """
    bright = image.max(axis=2) > threshold
    rows = np.flatnonzero(bright.any(axis=1))
    cols = np.flatnonzero(bright.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return 0, 0, image.shape[0], image.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def square_box(
    box: tuple[int, int, int, int], height: int, width: int
) -> tuple[int, int, int, int]:
    """Grow a box to a square around its centre (the FOV is a circle), clipped to the image."""
    top, left, bottom, right = box
    side = max(bottom - top, right - left)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    top = int(round(cy - side / 2))
    left = int(round(cx - side / 2))
    return max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)


def pad_to_square(array: np.ndarray, fill: int = 0) -> np.ndarray:
    """Pad an ``(H, W, ...)`` array symmetrically to a square."""
    height, width = array.shape[:2]
    side = max(height, width)
    pad_y, pad_x = side - height, side - width
    pads = [(pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)]
    pads += [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pads, constant_values=fill)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image to ``size``² (area averaging down, bilinear up)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``(H, W, C)`` lesion mask to ``size``², keeping every lesion.

    Values are 0/1 with :data:`IGNORE_INDEX` for unscored pixels. Downsampling max-pools the
    lesion pixels (any lesion pixel under an output pixel makes it a lesion); an output pixel
    is ignored when most of its area was ignored and it holds no lesion. Upsampling is
    nearest-neighbour.

    Args:
        mask: ``(H, W, C)`` uint8 mask.
        size: Output side length.

    Returns:
        ``(size, size, C)`` uint8 mask.
    """
    if mask.shape[0] == size and mask.shape[1] == size:
        return mask
    if mask.shape[0] < size:
        return _as_3d(cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST), mask)
    lesion = (mask == 1).astype(np.float32)
    ignore = (mask == IGNORE_INDEX).astype(np.float32)
    # INTER_AREA averages each output pixel's footprint: > 0 is exactly "any lesion pixel".
    lesion_small = _as_3d(cv2.resize(lesion, (size, size), interpolation=cv2.INTER_AREA), mask) > 0
    ignore_small = (
        _as_3d(cv2.resize(ignore, (size, size), interpolation=cv2.INTER_AREA), mask) > 0.5
    )
    out = lesion_small.astype(np.uint8)
    out[ignore_small & ~lesion_small] = IGNORE_INDEX
    return out


def _as_3d(resized: np.ndarray, like: np.ndarray) -> np.ndarray:
    # cv2 drops a trailing channel axis of length 1.
    return resized.reshape(resized.shape[0], resized.shape[1], like.shape[2])


def crop_and_resize(
    image: np.ndarray, mask: np.ndarray | None, size: int | None, crop_fov: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop image (and mask) to the field of view, pad to square, resize to ``size``.

    Args:
        image: ``(H, W, 3)`` uint8.
        mask: ``(H, W, C)`` uint8 or ``None``.
        size: Working resolution; ``None`` keeps the cropped resolution.
        crop_fov: Crop to the FOV's bounding square first.

    Returns:
        The processed image and mask.
    """
    if crop_fov:
        top, left, bottom, right = square_box(fov_bbox(image), *image.shape[:2])
        image = image[top:bottom, left:right]
        mask = None if mask is None else mask[top:bottom, left:right]
    image = pad_to_square(image)
    mask = None if mask is None else pad_to_square(mask)
    if size is not None:
        image = resize_image(image, size)
        mask = None if mask is None else resize_mask(mask, size)
    return image, mask
