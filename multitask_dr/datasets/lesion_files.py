"""Public lesion datasets with one mask file per lesion type (IDRiD, DDR, FGADR).

Read through :class:`~multitask_dr.datasets.tjdr.TJDRDataset` with ``layout`` set to one of
these names; ``root`` is the dataset's own root and ``split`` an official split. Paths:

``idrid`` (IDRiD sub-challenge A; splits ``train``, ``test``)
    ``A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg`` and
    ``A. Segmentation/2. All Segmentation Groundtruths/<same split folder>/
    {1. Microaneurysms,2. Haemorrhages,3. Hard Exudates,4. Soft Exudates}/IDRiD_NN_<LESION>.tif``
    (``5. Optic Disc`` is not a lesion: not read). IDRiD annotated all four lesions in every
    image and ships a file only where a lesion occurs (soft exudates: about half the images),
    so **an absent file is an all-background channel**, scored.
``ddr`` (DDR lesion segmentation; splits ``train``, ``valid``, ``test``)
    ``lesion_segmentation/<split>/image/<name>.jpg`` and
    ``lesion_segmentation/<split>/label/{EX,HE,MA,SE}/<name>.tif``, except that the validation
    split's label folder is ``segmentation label/`` (with a space). An absent file is an
    **unscored** channel for that image (nothing says it was looked for).
``fgadr`` (FGADR Seg-set; one folder, no official split: the datamodule draws one by seed)
    ``Original_Images/<name>.png`` and masks of the same name in ``Microaneurysms_Masks/``,
    ``Hemohedge_Masks/`` (sic), ``HardExudate_Masks/``, ``SoftExudate_Masks/``; grades in
    ``DR_Seg_Grading_Label.csv`` (``<name>,<grade>`` rows without a header). An absent mask
    file is an **unscored** channel.

Mask pixels: palette and 1-bit masks are read by their stored index (IDRiD's 1-bit palette
TIFFs hold 0/1: any non-zero index is a lesion); greyscale and RGB(A) masks by their brightest
colour plane, never alpha (one IDRiD test mask is RGBA with an opaque alpha plane), a lesion
from :data:`MASK_THRESHOLD` up: any non-zero value, except FGADR, whose masks have
anti-aliased edges (values 1-254 around 0/255 shapes): a lesion from the midpoint, 128.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multitask_dr.datasets.images import IMAGE_SUFFIXES, open_image
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.lesions import IGNORE_INDEX, LESIONS, NO_GRADE, NUM_LESIONS

#: The official splits of each per-lesion-file layout (``fgadr``: one folder, drawn by seed).
LESION_FILE_SPLITS: dict[str, tuple[str, ...]] = {
    "idrid": ("train", "test"),
    "ddr": ("train", "valid", "test"),
    "fgadr": ("train",),
}

#: Lowest grey/colour value that is a lesion, per layout (default 1: any non-zero value).
MASK_THRESHOLD: dict[str, int] = {"fgadr": 128}

#: Layouts where an absent mask file means "no such lesion" rather than "not scored".
ABSENT_IS_BACKGROUND = frozenset({"idrid"})

_IDRID_SPLITS = {"train": "a. Training Set", "test": "b. Testing Set"}
_IDRID_FOLDERS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}
_FGADR_FOLDERS = {
    "MA": "Microaneurysms_Masks",
    "HE": "Hemohedge_Masks",
    "EX": "HardExudate_Masks",
    "SE": "SoftExudate_Masks",
}
FGADR_GRADES = "DR_Seg_Grading_Label.csv"


@dataclass(frozen=True)
class LesionFilesRecord:
    """One image and its per-lesion mask files (``None``: no file for that lesion).

    Attributes:
        name: Sample name (the image's stem).
        image: The photograph.
        masks: One entry per lesion of :data:`~multitask_dr.lesions.LESIONS`, in order.
        absent_is_background: An absent file is a scored, lesion-free channel (else unscored).
        grade: The image's grade, :data:`~multitask_dr.lesions.NO_GRADE` when unknown.
        threshold: Lowest grey/colour value that is a lesion (:func:`read_lesion_mask`).
    """

    name: str
    image: Path
    masks: tuple[Path | None, ...]
    absent_is_background: bool
    grade: int = NO_GRADE
    threshold: int = 1

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the sample is read from (for cache keys)."""
        return (self.image, *(p for p in self.masks if p is not None))


def read_lesion_mask(path: Path, threshold: int = 1) -> np.ndarray:
    """One lesion's mask file as an ``(H, W)`` bool array.

    Args:
        path: The mask file.
        threshold: Lowest grey or colour value (brightest plane) that is a lesion; palette
            and 1-bit masks are read by index instead (any non-zero index is a lesion).

    Raises:
        DataError: When the file cannot be read.
    """
    with open_image(path) as image:
        if image.mode in ("P", "PA", "1"):
            values = np.asarray(image.convert("L") if image.mode == "1" else image)
            return (values[..., 0] if values.ndim == 3 else values) != 0
        if image.mode in ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr"):
            # The colour planes only: an opaque alpha plane would make every pixel a lesion.
            return np.asarray(image.convert("RGB")).max(axis=2) >= threshold
        values = np.asarray(image)
        return (values[..., 0] if values.ndim == 3 else values) >= threshold


def read_lesion_files(record: LesionFilesRecord, shape: tuple[int, int]) -> np.ndarray:
    """The ``(H, W, 4)`` mask of a record, each channel from its own file.

    Args:
        record: The sample's files.
        shape: ``(height, width)`` of its image (every mask must match it).

    Raises:
        DataError: When a mask is unreadable or differs in size from the image.
    """
    absent = 0 if record.absent_is_background else IGNORE_INDEX
    mask = np.full((*shape, NUM_LESIONS), absent, dtype=np.uint8)
    for channel, path in enumerate(record.masks):
        if path is None:
            continue
        lesion = read_lesion_mask(path, record.threshold)
        if lesion.shape != shape:
            raise DataError(
                f"mask size {lesion.shape[::-1]} differs from image {record.image} {shape[::-1]}",
                path=path,
            )
        mask[..., channel] = lesion
    return mask


def _by_stem(folder: Path, suffixes: tuple[str, ...], strip: str = "") -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            stem = path.stem
            found[stem[: -len(strip)] if strip and stem.endswith(strip) else stem] = path
    return found


def _fgadr_grades(path: Path, problems: ProblemLog) -> dict[str, int]:
    """FGADR's header-less ``name,grade`` rows (a header row, if any, is skipped)."""
    from multitask_dr.datasets.grade_labels import parse_grade
    from multitask_dr.datasets.graded import read_label_text

    grades: dict[str, int] = {}
    try:
        text = read_label_text(path)
    except DataError as error:
        problems.report(path, f"{error.reason}: every image counts as ungraded")
        return grades
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        if len(row) < 2 or not row[0].strip():
            continue
        try:
            grades[Path(row[0].strip()).stem] = parse_grade(row[1])
        except ValueError as error:
            if reader.line_num > 1:  # the first line may be a header
                problems.report(path, f"line {reader.line_num}: {error}", "row")
    return grades


def find_lesion_files(
    root: Path, layout: str, split: str, problems: ProblemLog
) -> list[LesionFilesRecord]:
    """Pair the images of one official split with their per-lesion mask files.

    Args:
        root: The dataset's root (see the module docstring).
        layout: ``idrid``, ``ddr`` or ``fgadr``.
        split: One of ``LESION_FILE_SPLITS[layout]``.
        problems: Where mask files without an image are reported.

    Returns:
        Records sorted by name.

    Raises:
        DataError: When the split's image folder does not exist.
        ValueError: On an unknown layout or split.
    """
    if split not in LESION_FILE_SPLITS.get(layout, ()):
        raise ValueError(f"{layout} has the splits {LESION_FILE_SPLITS.get(layout)}, not {split!r}")
    masks: dict[str, dict[str, Path]]
    grades: dict[str, int] = {}
    if layout == "idrid":
        base = root / "A. Segmentation"
        image_dir = base / "1. Original Images" / _IDRID_SPLITS[split]
        truth = base / "2. All Segmentation Groundtruths" / _IDRID_SPLITS[split]
        masks = {
            lesion: _by_stem(truth / folder, (".tif", ".tiff"), f"_{lesion}")
            for lesion, folder in _IDRID_FOLDERS.items()
        }
    elif layout == "ddr":
        split_dir = root / "lesion_segmentation" / split
        image_dir = split_dir / "image"
        label = split_dir / ("segmentation label" if split == "valid" else "label")
        masks = {lesion: _by_stem(label / lesion, (".tif", ".tiff")) for lesion in LESIONS}
    else:
        image_dir = root / "Original_Images"
        masks = {lesion: _by_stem(root / f, IMAGE_SUFFIXES) for lesion, f in _FGADR_FOLDERS.items()}
        grades = _fgadr_grades(root / FGADR_GRADES, problems)
    if not image_dir.is_dir():
        raise DataError(f"no image folder (expected the {layout} layout)", path=image_dir)
    images = _by_stem(image_dir, IMAGE_SUFFIXES)
    for lesion, files in masks.items():
        for stem, path in files.items():
            if stem not in images:
                problems.report(path, f"{lesion} mask has no image {image_dir / stem}.*")
    return [
        LesionFilesRecord(
            stem,
            path,
            tuple(masks[lesion].get(stem) for lesion in LESIONS),
            layout in ABSENT_IS_BACKGROUND,
            grades.get(stem, NO_GRADE),
            MASK_THRESHOLD.get(layout, 1),
        )
        for stem, path in images.items()
    ]
