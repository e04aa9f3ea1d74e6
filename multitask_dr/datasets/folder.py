"""Any folder of fundus photographs, for ``predict``: no labels, any size, PNG or JPEG.

Each image goes through the same preprocessing as TJDR (crop to the field of view's bounding
square, pad to a square, resize to the working resolution), and the sample keeps what is needed
to map a prediction back onto the original file (:func:`restore_geometry`): its size and the
crop box.

A file that cannot be decoded does not stop the run: its sample carries a black image and the
reason in ``error`` (an empty string for good files), so the model still sees a full batch and
the prediction writer reports and skips it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from multitask_dr.datasets.images import IMAGE_SUFFIXES, read_image
from multitask_dr.datasets.preprocess import (
    crop_and_resize,
    fov_bbox,
    resize_image,
    square_box,
)
from multitask_dr.datasets.problems import DataError
from multitask_dr.lesions import NO_GRADE

log = logging.getLogger(__name__)

#: File endings read as images (case-insensitive).


def list_images(root: str | Path, recursive: bool = False) -> list[Path]:
    """Image files under ``root``, sorted by path.

    Args:
        root: The folder.
        recursive: Also look in sub-folders.

    Raises:
        DataError: When ``root`` is not a folder or holds no image file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"predict_dir {root} is not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"predict_dir {root} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def unique_names(files: list[Path], root: Path) -> list[str]:
    """Output names: the relative path without suffix (``/`` -> ``__``), suffix kept on clashes.

    ``a.png`` and ``a.jpg`` in one folder would otherwise write the same ``a.json``.
    """
    stems = [p.relative_to(root).with_suffix("").as_posix().replace("/", "__") for p in files]
    counts = Counter(stems)
    return [
        f"{stem}_{p.suffix.lower().lstrip('.')}" if counts[stem] > 1 else stem
        for stem, p in zip(stems, files, strict=True)
    ]


def crop_box(image: np.ndarray, crop_fov: bool) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the region :func:`crop_and_resize` keeps."""
    height, width = image.shape[:2]
    if not crop_fov:
        return 0, 0, height, width
    return square_box(fov_bbox(image), height, width)


def restore_geometry(
    maps: np.ndarray, original_size: tuple[int, int], box: tuple[int, int, int, int]
) -> np.ndarray:
    """Map working-resolution maps back onto the original image (inverse of preprocessing).

    Undoes resize (bilinear), padding to a square and the field-of-view crop; pixels outside
    the crop are 0.

    Args:
        maps: ``(C, S, S)`` float maps at the working resolution.
        original_size: ``(height, width)`` of the original file.
        box: ``(top, left, bottom, right)`` crop box from :func:`crop_box`.

    Returns:
        ``(C, height, width)`` float32 maps aligned with the original file.
    """
    height, width = original_size
    top, left, bottom, right = box
    crop_h, crop_w = bottom - top, right - left
    side = max(crop_h, crop_w)
    pad_y, pad_x = (side - crop_h) // 2, (side - crop_w) // 2
    out = np.zeros((maps.shape[0], height, width), dtype=np.float32)
    for c, channel in enumerate(maps):
        # One channel at a time: a 4000 px photograph would need ~250 MB for all four at once.
        square = cv2.resize(
            channel.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR
        )
        out[c, top:bottom, left:right] = square[pad_y : pad_y + crop_h, pad_x : pad_x + crop_w]
    return out


def as_chw_tensor(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 image as a ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class ImageFolderDataset(Dataset):
    """Unlabelled fundus images from a folder, preprocessed like TJDR.

    Samples: ``image`` (the transform's output, e.g. a normalised ``(3, S, S)`` tensor),
    ``name`` (output file stem), ``path``, ``original_size`` ``(height, width)``, ``crop_box``
    ``(top, left, bottom, right)``, ``grade`` (:data:`~multitask_dr.lesions.NO_GRADE`) and
    ``error`` (``""``, or why the file was skipped).

    Args:
        root: Folder of images (PNG, JPEG, TIFF, BMP; any size).
        image_size: Working resolution (the model's input side).
        crop_fov: Crop to the field of view's bounding square first (as the training data).
        transform: Callable on the sample dict (``image`` as ``(H, W, 3)`` uint8); ``None``
            returns the uint8 image as a ``(3, S, S)`` tensor.
        recursive: Also read sub-folders.
        read_sizes: Further sizes each image is also read at (the same crop), as
            ``image_reads`` (see :class:`~multitask_dr.datasets.tjdr.TJDRDataset`).
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        crop_fov: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        recursive: bool = False,
        read_sizes: Sequence[int] = (),
    ) -> None:
        self.root = Path(root)
        self.image_size = image_size
        self.read_sizes = tuple(read_sizes)
        self.crop_fov = crop_fov
        self.transform = transform
        self.files = list_images(self.root, recursive)
        self.names = unique_names(self.files, self.root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        error = ""
        sizes = (self.image_size, *self.read_sizes)
        try:
            original = read_image(path)
            box = crop_box(original, self.crop_fov)
            # Cropped once: each size is a resize of the same square (the crop scans every pixel).
            square, _ = crop_and_resize(original, None, None, self.crop_fov)
            images = [resize_image(square, s) for s in sizes]
            size = original.shape[:2]
        except DataError as exc:
            log.warning("skipping %s", exc)
            error = str(exc)
            images = [np.zeros((s, s, 3), dtype=np.uint8) for s in sizes]
            size, box = (0, 0), (0, 0, 0, 0)
        sample: dict[str, Any] = {"image": images[0], "grade": NO_GRADE, "name": self.names[index]}
        if self.read_sizes:
            sample["image_reads"] = images[1:]
        if self.transform is not None:
            sample = self.transform(sample)
        else:
            sample["image"] = as_chw_tensor(images[0])
            if self.read_sizes:
                sample["image_reads"] = [as_chw_tensor(read) for read in images[1:]]
        sample |= {
            "path": str(path),
            "original_size": torch.tensor(size, dtype=torch.long),
            "crop_box": torch.tensor(box, dtype=torch.long),
            "error": error,
        }
        return sample
