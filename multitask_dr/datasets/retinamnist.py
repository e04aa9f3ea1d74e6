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

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.environment import environment_defaults
from multitask_dr.lesions import NUM_GRADES

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")

#: Bad label rows reported one by one before the rest are summed up in one line.
ROWS_LISTED = 10

_NPY_MAGIC = b"\x93NUMPY"


def npz_path(root: str | Path, size: int) -> Path:
    """The file medmnist reads for ``size`` under ``root``."""
    if size not in SIZES:
        raise ValueError(f"RetinaMNIST size must be one of {SIZES}, got {size}")
    return Path(root) / ("retinamnist.npz" if size == 28 else f"retinamnist_{size}.npz")


def write_npz(
    path: Path, images: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> None:
    """Write a RetinaMNIST file :func:`check_npz` accepts: medmnist's keys, in its order.

    Args:
        path: The ``.npz`` file (:func:`npz_path`); its folder must exist.
        images: ``(N, S, S, 3)`` uint8 per split name (:data:`SPLITS`).
        labels: ``(N, 1)`` uint8 grades per split name, the same splits.
    """
    # Key order as in the official file; savez_compressed stamps no time, so equal arrays
    # give byte-identical files.
    arrays = {f"{split}_images": images[split] for split in images}
    arrays |= {f"{split}_labels": labels[split] for split in images}
    np.savez_compressed(path, **arrays)


def _check_container(path: Path) -> None:
    """Raise unless ``path`` is a zip archive, saying what it is instead."""
    if path.is_dir():
        raise DataError("is a folder, not an npz file", path=path)
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes), not an npz file", path=path)
    if zipfile.is_zipfile(path):
        return
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_NPY_MAGIC):
        raise DataError(
            "a single .npy array, not an npz archive (numpy.savez writes those)", path=path
        )
    if head.startswith(b"PK"):
        raise DataError("truncated or damaged npz (zip) archive", path=path)
    raise DataError(
        f"not an npz file (a zip archive of .npy arrays, as numpy.savez writes); it starts "
        f"with {head[:12]!r}",
        path=path,
    )


def check_npz(path: Path, size: int) -> None:
    """Check an npz has medmnist's keys, dtypes and shapes, naming what is wrong.

    Label *values* are checked row by row when a split is read (:func:`check_labels`).

    Raises:
        DataError: On a file that is not an npz, a missing key, a wrong shape or dtype.
    """
    _check_container(path)
    try:
        with np.load(path) as data:
            keys = set(data.files)
            expected = {f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")}
            if missing := sorted(expected - keys):
                raise DataError(f"npz lacks the keys {missing} (has {sorted(keys)})", path=path)
            for split in SPLITS:
                images = _array(data, f"{split}_images", path)
                labels = _array(data, f"{split}_labels", path)
                if images.ndim != 4 or images.shape[1:] != (size, size, 3):
                    raise DataError(
                        f"{split}_images has shape {images.shape}, expected (N, {size}, {size}, 3)",
                        path=path,
                    )
                if images.dtype != np.uint8:
                    raise DataError(f"{split}_images is {images.dtype}, expected uint8", path=path)
                if labels.shape != (len(images), 1):
                    want = (len(images), 1)
                    raise DataError(
                        f"{split}_labels has shape {labels.shape}, expected {want}", path=path
                    )
                if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
                    raise DataError(
                        f"{split}_labels is {labels.dtype}, expected integers", path=path
                    )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"not a readable npz file ({error})", path=path) from error


def _array(data: Any, key: str, path: Path) -> np.ndarray:
    try:
        return data[key]
    except ValueError as error:  # numpy's refusal to unpickle an object array
        raise DataError(
            f"{key} is an array of Python objects, expected numbers", path=path
        ) from error


def check_labels(labels: np.ndarray, path: Path, split: str, problems: ProblemLog) -> np.ndarray:
    """Grades of a split's label column; rows that are not a whole number 0-4 are reported.

    Args:
        labels: ``(N, 1)`` label array as stored.
        path: The npz file, for messages.
        split: The split's name, for messages.
        problems: Where bad rows go (strict mode raises on the first).

    Returns:
        Boolean ``(N,)`` mask of the usable rows.
    """
    values = np.asarray(labels).reshape(-1).astype(np.float64)
    whole = np.isfinite(values) & (values == np.round(values))
    usable = whole & (values >= 0) & (values < NUM_GRADES)
    bad = np.flatnonzero(~usable)
    for row in bad[:ROWS_LISTED]:
        why = "is not a whole number" if not whole[row] else f"is outside 0-{NUM_GRADES - 1}"
        problems.report(path, f"{split}_labels row {row}: label {values[row]:g} {why}", "row")
    if len(bad) > ROWS_LISTED:
        problems.report(
            path,
            f"{split}_labels: {len(bad) - ROWS_LISTED} more rows with labels that are not "
            f"grades 0-{NUM_GRADES - 1}",
            f"{len(bad) - ROWS_LISTED} rows",
        )
    return usable


def import_medmnist_retina(root: Path) -> Any:
    """The ``RetinaMNIST`` class of medmnist, imported without leaving anything in the environment.

    Importing medmnist creates its default data folder (``$MEDMNIST_ROOT``, else
    ``~/.medmnist``). Unless the user set it, it points at ``root`` for the import only, so
    no other code in the process sees a changed environment; the files are always read from
    the ``root`` passed to the class itself.
    """
    with environment_defaults(MEDMNIST_ROOT=str(root)):
        from medmnist import RetinaMNIST
    return RetinaMNIST


class RetinaMNISTDataset(Dataset):
    """One split of RetinaMNIST at one size.

    Args:
        root: Folder holding medmnist's npz files.
        split: ``train``, ``val`` or ``test``.
        size: 28, 64, 128 or 224 (picks the file).
        transform: Applied to each sample dict.
        download: Let medmnist download the file (needs a network; off by default).
        indices: Keep only these rows of the split.
        strict: Raise on the first bad label row instead of reporting and skipping it (a file
            that is not a usable npz raises in both modes: there is nothing to keep).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 28,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        download: bool = False,
        indices: np.ndarray | None = None,
        strict: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.size = size
        self.transform = transform
        self.problems = ProblemLog(strict=strict)
        path = npz_path(root, size)
        if not path.exists() and not download:
            raise DataError(
                f"RetinaMNIST file not found: {path}. Place medmnist's "
                f"'{path.name}' in {self.root} (or generate synthetic data with "
                "`multitask-dr synth`); nothing is downloaded unless download=True."
            )
        if path.exists():
            check_npz(path, size)
        RetinaMNIST = import_medmnist_retina(self.root)

        self.root.mkdir(parents=True, exist_ok=True)
        data = RetinaMNIST(split=split, root=str(self.root), size=size, download=download)
        images, labels = np.asarray(data.imgs), np.asarray(data.labels)
        usable = check_labels(labels, path, split, self.problems)
        everything = np.arange(len(labels))
        rows = everything if indices is None else everything[indices]
        rows = rows[usable[rows]]
        #: Row in the file of each sample.
        self.rows: np.ndarray = rows
        whole = np.array_equal(rows, everything)  # then no copy of a large array
        self.images: np.ndarray = images if whole else images[rows]
        self.grades: np.ndarray = labels.reshape(-1)[rows].astype(np.int64)

    def __len__(self) -> int:
        return len(self.grades)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "image": self.images[index],
            "grade": int(self.grades[index]),
            "name": f"{self.split}_{self.rows[index]:04d}",  # the row in the file
        }
        return self.transform(sample) if self.transform is not None else sample
