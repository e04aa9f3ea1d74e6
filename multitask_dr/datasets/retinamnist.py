"""RetinaMNIST grading dataset, read through medmnist's own class and file naming.

Files (medmnist's names): ``root/retinamnist.npz`` for 28 px and
``root/retinamnist_{64,128,224}.npz`` for the larger sizes, each with
``{train,val,test}_images`` ``(N, H, W, 3)`` uint8 and ``{train,val,test}_labels`` ``(N, 1)``
grades 0-4. Nothing is downloaded: place the file
yourself (``download=True`` asks medmnist to fetch it where a network exists).

medmnist's ``__len__`` asserts the official split sizes, which a synthetic or subsampled file
does not have, so this class keeps medmnist's loading and checks but indexes its arrays itself.
Samples are dicts: ``image`` (H, W, 3) uint8, ``grade`` int, ``name``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from multitask_dr.datasets.problems import DataError
from multitask_dr.lesions import NUM_GRADES

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


def npz_path(root: str | Path, size: int) -> Path:
    """The file medmnist reads for ``size`` under ``root``."""
    if size not in SIZES:
        raise ValueError(f"RetinaMNIST size must be one of {SIZES}, got {size}")
    return Path(root) / ("retinamnist.npz" if size == 28 else f"retinamnist_{size}.npz")


def check_npz(path: Path, size: int) -> None:
    """Check an npz has medmnist's keys, dtypes and shapes, naming what is wrong.

    Raises:
        DataError: On a missing key, a wrong shape/dtype or a grade outside 0-4.
    """
    try:
        with np.load(path) as data:
            keys = set(data.files)
            expected = {f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")}
            if missing := sorted(expected - keys):
                raise DataError(f"{path}: npz lacks the keys {missing} (has {sorted(keys)})")
            for split in SPLITS:
                images, labels = data[f"{split}_images"], data[f"{split}_labels"]
                if images.ndim != 4 or images.shape[1:] != (size, size, 3):
                    raise DataError(
                        f"{path}: {split}_images has shape {images.shape}, "
                        f"expected (N, {size}, {size}, 3)"
                    )
                if images.dtype != np.uint8:
                    raise DataError(f"{path}: {split}_images is {images.dtype}, expected uint8")
                if labels.shape != (len(images), 1):
                    want = (len(images), 1)
                    raise DataError(
                        f"{path}: {split}_labels has shape {labels.shape}, expected {want}"
                    )
                if labels.size and not (labels.min() >= 0 and labels.max() < NUM_GRADES):
                    raise DataError(f"{path}: {split}_labels outside 0-{NUM_GRADES - 1}")
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable npz file ({error})") from error


class RetinaMNISTDataset(Dataset):
    """One split of RetinaMNIST at one size.

    Args:
        root: Folder holding medmnist's npz files.
        split: ``train``, ``val`` or ``test``.
        size: 28, 64, 128 or 224 (picks the file).
        transform: Applied to each sample dict.
        download: Let medmnist download the file (needs a network; off by default).
        indices: Keep only these rows of the split.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 28,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        download: bool = False,
        indices: np.ndarray | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.size = size
        self.transform = transform
        path = npz_path(root, size)
        if not path.exists() and not download:
            raise DataError(
                f"RetinaMNIST file not found: {path}. Place medmnist's "
                f"'{path.name}' in {self.root} (or generate synthetic data with "
                "`multitask-dr synth`); nothing is downloaded unless download=True."
            )
        if path.exists():
            check_npz(path, size)
        os.environ.setdefault("MEDMNIST_ROOT", str(self.root))
        from medmnist import RetinaMNIST  # imported late: it creates ~/.medmnist on import

        self.root.mkdir(parents=True, exist_ok=True)
        data = RetinaMNIST(split=split, root=str(self.root), size=size, download=download)
        self.images: np.ndarray = np.asarray(data.imgs)
        self.grades: np.ndarray = np.asarray(data.labels).reshape(-1).astype(np.int64)
        if indices is not None:
            self.images, self.grades = self.images[indices], self.grades[indices]

    def __len__(self) -> int:
        return len(self.grades)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "image": self.images[index],
            "grade": int(self.grades[index]),
            "name": f"{self.split}_{index:04d}",
        }
        return self.transform(sample) if self.transform is not None else sample
