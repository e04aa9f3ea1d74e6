"""Grading-only public datasets: full-resolution photographs with one ICDR grade each.

Each layout is read as its publisher ships it (paths relative to the dataset's ``root``):

``eyepacs`` (Kaggle "Diabetic Retinopathy Detection")
    ``trainLabels.csv`` (``image,level``; ``image`` without extension) and the images
    ``train/<image>.jpeg`` (or ``<image>.jpeg`` beside the CSV, as in a sample folder). With
    the released test labels ``retinopathy_solution.csv`` (``image,level,Usage``) and
    ``test/<image>.jpeg`` present, they are the official ``test`` split; validation (and,
    without them, test) is drawn by seed.
``aptos`` (APTOS 2019 Blindness Detection)
    ``train.csv`` (``id_code,diagnosis``) and ``train_images/<id_code>.png``. The test labels
    were never published: seeded split.
``messidor2`` (Messidor-2 with the Krause et al. adjudicated grades)
    ``messidor_data.csv`` (``image_id,adjudicated_dr_grade,adjudicated_dme,
    adjudicated_gradable``; ``image_id`` keeps its extension) and ``IMAGES/<image_id>``.
    Rows with ``adjudicated_gradable`` 0 are ungradable: skipped and counted. Seeded split.
``idrid`` (IDRiD, sub-challenge B)
    ``B. Disease Grading/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NNN.jpg``
    with ``B. Disease Grading/2. Groundtruths/{a. IDRiD_Disease Grading_Training Labels.csv,
    b. IDRiD_Disease Grading_Testing Labels.csv}`` (``Image name`` without extension,
    ``Retinopathy grade``; header cells are stripped: ``Risk of macular edema`` has a trailing
    space, and the files carry empty trailing columns). Official ``train``/``test`` splits;
    the two share names (``IDRiD_001`` is in both), so a split never mixes with the other.
``ddr`` (DDR, grading part)
    ``DR_grading/{train,valid,test}/<file>.jpg`` with ``DR_grading/{train,valid,test}.txt``
    lines ``<file> <grade>``; grade 5 is "ungradable": skipped and counted. Official
    ``train``/``valid``/``test`` splits.

Every ungradable image and every unusable row or file goes to the dataset's
:class:`~multitask_dr.datasets.problems.ProblemLog` (``strict`` raises on the first fault; an
ungradable image is no fault: counted in both modes).
Samples are dicts like TJDR's without a mask: ``image`` (H, W, 3) uint8 after the same
field-of-view crop and resize (:func:`~multitask_dr.datasets.preprocess.crop_and_resize`),
``grade`` int and ``name``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from multitask_dr.datasets.file_digest import cached_file_digest
from multitask_dr.datasets.grade_labels import parse_grade
from multitask_dr.datasets.images import IMAGE_SUFFIXES, describe_error, read_image
from multitask_dr.datasets.preprocess import crop_and_resize
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.datasets.records import RecordsDataset

log = logging.getLogger(__name__)

GradedLayout = Literal["eyepacs", "aptos", "messidor2", "idrid", "ddr"]

#: The official splits of each layout (a single ``train``: the datamodule draws the rest).
OFFICIAL_SPLITS: dict[str, tuple[str, ...]] = {
    "eyepacs": ("train",),
    "aptos": ("train",),
    "messidor2": ("train",),
    "idrid": ("train", "test"),
    "ddr": ("train", "valid", "test"),
}

#: What a skipped ungradable image counts as in the problem log.
UNGRADABLE = "ungradable image"

#: DDR's label for an image its graders could not grade.
DDR_UNGRADABLE = 5

_IDRID = "B. Disease Grading"
_IDRID_FOLDERS = {"train": "a. Training Set", "test": "b. Testing Set"}
_IDRID_CSV = {
    "train": "a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
}


@dataclass(frozen=True)
class GradedRecord:
    """One graded photograph: its name, its file and its grade 0-4."""

    name: str
    image: Path
    grade: int


EYEPACS_TEST_LABELS = "retinopathy_solution.csv"


def write_eyepacs_labels(path: Path, rows: Sequence[tuple[str, int]]) -> None:
    """Write an EyePACS ``trainLabels.csv`` (``image,level``; ``image`` without extension)."""
    lines = ["image,level", *(f"{name},{grade}" for name, grade in rows)]
    path.write_text("\n".join(lines) + "\n")


def official_splits(root: Path, layout: GradedLayout) -> tuple[str, ...]:
    """The official splits present under ``root`` (EyePACS: ``test`` once its labels are)."""
    if layout == "eyepacs" and (root / EYEPACS_TEST_LABELS).is_file():
        return ("train", "test")
    return OFFICIAL_SPLITS[layout]


def check_layout(layout: str) -> GradedLayout:
    """The layout name, checked.

    Raises:
        ValueError: On a name outside :data:`OFFICIAL_SPLITS`.
    """
    if layout not in OFFICIAL_SPLITS:
        raise ValueError(f"layout must be one of {sorted(OFFICIAL_SPLITS)}, got {layout!r}")
    return layout  # type: ignore[return-value]


def read_label_text(path: Path) -> str:
    """A label file's text (UTF-8, BOM dropped).

    Raises:
        DataError: When it is missing, not a file, unreadable or not UTF-8.
    """
    if not path.is_file():
        raise DataError("label file not found" if not path.exists() else "is not a file", path=path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 text (offset {error.start}); save it as UTF-8"
        raise DataError(reason, path=path) from None
    except OSError as error:
        raise DataError(f"cannot read label file: {describe_error(error)}", path=path) from error


def _csv_rows(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` of a CSV whose header holds ``columns`` (header cells stripped).

    Raises:
        DataError: When the file is missing, unreadable or lacks a column.
    """
    reader = csv.reader(io.StringIO(read_label_text(path), newline=""))
    try:
        header = [cell.strip() for cell in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"needs the columns {missing} (has {header})", path=path)
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, rows of empty trailing columns
            padded = cells + [""] * (len(header) - len(cells))
            rows.append((reader.line_num, dict(zip(header, padded, strict=False))))
    except csv.Error as error:
        raise DataError(f"line {reader.line_num}: not valid CSV ({error})", path=path) from error
    return rows


def _image_files(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem (any case of :data:`IMAGE_SUFFIXES`)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def _collect(
    rows: Sequence[tuple[int, str, str, bool]],
    images: dict[str, Path],
    label_file: Path,
    problems: ProblemLog,
) -> list[GradedRecord]:
    """Records from ``(line, image stem, grade text, ungradable)`` rows; the rest reported.

    Ungradable rows are reported as :data:`UNGRADABLE`, rows without an image file and
    images without a row as files skipped, bad grades as rows skipped.
    """
    records: dict[str, GradedRecord] = {}
    for line, stem, text, ungradable in rows:
        where = f"line {line}: {stem}"
        if ungradable:
            problems.skip(label_file, f"{where} is ungradable", UNGRADABLE)
            continue
        try:
            grade = parse_grade(text)
        except ValueError as error:
            problems.report(label_file, f"{where}: {error}", "row")
            continue
        path = images.get(stem)
        if path is None:
            problems.report(label_file, f"{where}: no image file for this row", "row")
            continue
        if stem in records:
            problems.report(label_file, f"{where}: listed twice (the first row is kept)", "row")
            continue
        records[stem] = GradedRecord(stem, path, grade)
    listed = {row[1] for row in rows}
    for stem, path in images.items():
        if stem not in listed:
            problems.report(path, f"no row in {label_file.name}")
    return sorted(records.values(), key=lambda record: record.name)


def find_graded(
    root: Path, layout: GradedLayout, split: str, problems: ProblemLog
) -> list[GradedRecord]:
    """The usable graded photographs of one official split of a layout.

    Args:
        root: The dataset's root (see the module docstring for each layout).
        layout: Which publisher's layout.
        split: One of :func:`official_splits`.
        problems: Where ungradable images and bad rows or files are reported.

    Returns:
        Records sorted by name.

    Raises:
        DataError: When the label file is missing or lacks its columns.
        ValueError: On an unknown layout or split.
    """
    layout = check_layout(layout)
    splits = official_splits(root, layout)
    if split not in splits:
        raise ValueError(f"{layout} under {root} has the splits {splits}, not {split!r}")
    if layout == "eyepacs":
        labels = root / ("trainLabels.csv" if split == "train" else EYEPACS_TEST_LABELS)
        folder = root / split if (root / split).is_dir() else root
        table = _csv_rows(labels, ["image", "level"])
        rows = [(n, r["image"].strip(), r["level"], False) for n, r in table]
        return _collect(rows, _image_files(folder), labels, problems)
    if layout == "aptos":
        labels = root / "train.csv"
        table = _csv_rows(labels, ["id_code", "diagnosis"])
        rows = [(n, r["id_code"].strip(), r["diagnosis"], False) for n, r in table]
        return _collect(rows, _image_files(root / "train_images"), labels, problems)
    if layout == "messidor2":
        labels = root / "messidor_data.csv"
        columns = ["image_id", "adjudicated_dr_grade", "adjudicated_gradable"]
        # Ungradable rows carry no grade (or a meaningless one): the flag decides.
        rows = [
            (
                n,
                Path(r["image_id"].strip()).stem,
                r["adjudicated_dr_grade"],
                r["adjudicated_gradable"].strip() == "0",
            )
            for n, r in _csv_rows(labels, columns)
        ]
        return _collect(rows, _image_files(root / "IMAGES"), labels, problems)
    if layout == "idrid":
        base = root / _IDRID
        labels = base / "2. Groundtruths" / _IDRID_CSV[split]
        table = _csv_rows(labels, ["Image name", "Retinopathy grade"])
        rows = [(n, r["Image name"].strip(), r["Retinopathy grade"], False) for n, r in table]
        folder = base / "1. Original Images" / _IDRID_FOLDERS[split]
        return _collect(rows, _image_files(folder), labels, problems)
    labels = root / "DR_grading" / f"{split}.txt"
    rows = []
    for line, text in enumerate(read_label_text(labels).splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2:
            problems.report(labels, f"line {line}: expected '<file> <grade>', got {text!r}", "row")
            continue
        rows.append((line, Path(parts[0]).stem, parts[1], parts[1] == str(DDR_UNGRADABLE)))
    return _collect(rows, _image_files(root / "DR_grading" / split), labels, problems)


class GradedFolderDataset(RecordsDataset):
    """One official split of a grading-only public dataset, preprocessed like lesion photos.

    Args:
        root: The dataset's root.
        layout: ``eyepacs``, ``aptos``, ``messidor2``, ``idrid`` or ``ddr``.
        split: One of the layout's official splits (:func:`official_splits`).
        image_size: Working resolution after the field-of-view crop (``None`` keeps it).
        crop_fov: Crop to the retina's bounding square before resizing.
        strict: Raise on the first problem instead of reporting and skipping it (ungradable
            images are skipped and counted in both modes: they are not faults).
        transform: Applied to each sample dict.
        cache_dir: Folder for preprocessed ``.npz`` images (keyed by file hash and settings).
    """

    def __init__(
        self,
        root: str | Path,
        layout: GradedLayout,
        split: str = "train",
        image_size: int | None = None,
        crop_fov: bool = True,
        strict: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.layout = check_layout(layout)
        self.split = split
        self.image_size = image_size
        self.crop_fov = crop_fov
        self.transform = transform
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.problems = ProblemLog(strict=strict)
        if not self.root.is_dir():
            raise DataError(f"{layout} root does not exist or is not a folder", path=self.root)
        self.records = find_graded(self.root, self.layout, split, self.problems)

    @property
    def ungradable(self) -> int:
        """How many ungradable images were skipped."""
        return sum(p.skipped == UNGRADABLE for p in self.problems.problems)

    @property
    def grades(self) -> np.ndarray:
        """The grade of every sample, in order."""
        return np.array([r.grade for r in self.records], dtype=np.int64)

    def load(self, index: int) -> np.ndarray:
        """The preprocessed (FOV-cropped, resized) image, through the cache when set.

        Raises:
            DataError: When the file cannot be decoded.
        """
        record = self.records[index]
        cached = None
        if self.cache_dir is not None:
            settings = f"{self.image_size}|{self.crop_fov}".encode()
            key = f"{record.name}-{cached_file_digest(record.image)}-"
            cached = self.cache_dir / f"{key}{hashlib.sha1(settings).hexdigest()[:8]}.npz"
            if cached.exists():
                try:
                    with np.load(cached) as stored:
                        return stored["image"]
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                    log.warning("ignoring damaged cache file %s (%s)", cached, error)
        image, _ = crop_and_resize(read_image(record.image), None, self.image_size, self.crop_fov)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{id(self)}.tmp.npz")
            np.savez(tmp, image=image)
            tmp.replace(cached)
        return image

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        sample: dict[str, Any] = {
            "image": self.load(index),
            "grade": record.grade,
            "name": record.name,
        }
        return self.transform(sample) if self.transform is not None else sample
