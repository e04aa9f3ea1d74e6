"""TJDR release annotation PNGs: palette indices (0 bg, 1 EX, 2 HE, 3 MA, 4 SE), read and written.

The reader (:func:`read_release_mask`) and the one writer (:func:`release_palette_image`) of
the release format live here, with the two conversions between release indices and the
project's ``(H, W, 4)`` channel masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from multitask_dr.datasets.images import open_image
from multitask_dr.datasets.problems import DataError
from multitask_dr.lesions import (
    LESIONS,
    NUM_LESIONS,
    RELEASE_INDEX,
    RELEASE_INDEX_TO_CHANNEL,
    RELEASE_PALETTE,
    RELEASE_PRIORITY,
)


def release_mask_to_channels(index_mask: np.ndarray, path: Path | str = "") -> np.ndarray:
    """Convert a release palette-index mask to the project's ``(H, W, 4)`` channel mask.

    Args:
        index_mask: ``(H, W)`` integer array of release indices (0 bg, 1 EX, 2 HE, 3 MA, 4 SE).
        path: The file it came from, for the error message.

    Returns:
        ``(H, W, 4)`` uint8 0/1 mask in ``MA, HE, EX, SE`` order.

    Raises:
        DataError: When an index other than 0-4 occurs.
    """
    bad = np.setdiff1d(np.unique(index_mask), list(RELEASE_INDEX_TO_CHANNEL))
    if bad.size:
        raise DataError(
            f"palette index {bad.tolist()} is not a TJDR class (expected 0-4)", path=path or None
        )
    channels = np.zeros((*index_mask.shape, NUM_LESIONS), dtype=np.uint8)
    for index, channel in RELEASE_INDEX_TO_CHANNEL.items():
        if channel >= 0:
            channels[..., channel] = index_mask == index
    return channels


def channels_to_release_mask(mask: np.ndarray) -> np.ndarray:
    """Collapse a ``(H, W, 4)`` lesion mask into release indices, one lesion per pixel.

    Where lesions overlap, the first of :data:`~multitask_dr.lesions.RELEASE_PRIORITY` wins;
    unscored pixels (:data:`~multitask_dr.lesions.IGNORE_INDEX`) count as background.

    Args:
        mask: ``(H, W, 4)`` in ``MA, HE, EX, SE`` order; a pixel holds a lesion where it is 1
            (or ``True``).

    Returns:
        ``(H, W)`` uint8: 0 bg, 1 EX, 2 HE, 3 MA, 4 SE.
    """
    index = np.zeros(mask.shape[:2], dtype=np.uint8)
    # Lowest priority first, so each higher one overwrites it.
    for lesion in reversed(RELEASE_PRIORITY):
        index[mask[..., LESIONS.index(lesion)] == 1] = RELEASE_INDEX[lesion]
    return index


def release_palette_image(index_mask: np.ndarray) -> Image.Image:
    """A release annotation image: mode ``P``, the indices as they are, TJDR's palette.

    Args:
        index_mask: ``(H, W)`` release indices (:func:`channels_to_release_mask`).

    Returns:
        The image; ``.save(path)`` writes the PNG.
    """
    height, width = index_mask.shape
    # frombytes keeps the indices as they are (converting "L" to "P" would requantise).
    data = np.ascontiguousarray(index_mask, dtype=np.uint8).tobytes()
    image = Image.frombytes("P", (width, height), data)
    flat = [value for colour in RELEASE_PALETTE for value in colour]
    image.putpalette(flat + [0] * (768 - len(flat)))
    return image


def read_release_mask(path: Path) -> np.ndarray:
    """Read a release annotation PNG by its palette indices (never converted to grey/RGB).

    Raises:
        DataError: When the file is unreadable, not a palette/greyscale PNG, or holds an index
            outside 0-4.
    """
    with open_image(path) as image:
        if image.mode not in ("P", "L"):
            raise DataError(f"annotation is mode {image.mode!r}, expected a palette PNG", path=path)
        index_mask = np.asarray(image)
    return release_mask_to_channels(index_mask, path)
