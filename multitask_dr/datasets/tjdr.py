"""TJDR lesion-segmentation dataset, in both of its forms.

Layout (the public release, see ``shared/data/TJDR_FORMAT.md``)::

    root/{train,test}/image/NNN.png          RGB fundus photograph
    root/{train,test}/annotation/NNN.png     palette PNG, pixel = 0 bg, 1 EX, 2 HE, 3 MA, 4 SE
    root/{train,test}/image/NNN.json         (optional) Labelme JSON, the form TJDR was drawn in
    root/{train,test}/grades.csv             (optional, not in the release) image,grade[,...]

or, with ``layout="flat"``, a plain Labelme folder (as Labelme saves one, e.g. HEI-MED's)::

    root/<name>.jpg + root/<name>.json       image and its Labelme JSON side by side
    root/grades.csv                          (optional) image,grade[,...]

A flat folder has no split of its own: the datamodule draws one by seed and writes it down.

The same class reads the public datasets with one mask file per lesion type in their own
layouts (``layout`` ``idrid``, ``ddr`` or ``fgadr``; see
:mod:`multitask_dr.datasets.lesion_files`).

Samples are dicts: ``image`` (H, W, 3) uint8, ``mask`` (H, W, 4) uint8 in the project's channel
order ``MA, HE, EX, SE`` (values 0/1, :data:`~multitask_dr.lesions.IGNORE_INDEX` where not
scored), ``grade`` (int, :data:`~multitask_dr.lesions.NO_GRADE` when unknown) and ``name``.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from multitask_dr.datasets.images import (
    IMAGE_SUFFIXES,
    describe_error,
    image_size,
    open_image,
    read_image,
)
from multitask_dr.datasets.lesion_files import (
    LesionFilesRecord,
    find_lesion_files,
    read_lesion_files,
)
from multitask_dr.datasets.preprocess import crop_and_resize
from multitask_dr.datasets.problems import DataError, ProblemLog, ReportedError
from multitask_dr.datasets.rasterize import DEFAULT_RASTERIZE, RasterizeRule, check_rule
from multitask_dr.lesions import (
    DEFAULT_LABEL_MAP,
    IGNORE_INDEX,
    LESIONS,
    NO_GRADE,
    NUM_GRADES,
    NUM_LESIONS,
    RELEASE_INDEX,
    RELEASE_INDEX_TO_CHANNEL,
    RELEASE_PALETTE,
    RELEASE_PRIORITY,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from multitask_dr.datasets.labelme import LabelmeAnnotation

AnnotationFormat = Literal["auto", "png", "labelme"]
Layout = Literal["tjdr", "flat", "idrid", "ddr", "fgadr"]

#: Layouts with one mask file per lesion type (:mod:`multitask_dr.datasets.lesion_files`).
PER_LESION_LAYOUTS = ("idrid", "ddr", "fgadr")
MaskT = TypeVar("MaskT", np.ndarray, torch.Tensor)


def check_lesions(lesions: Sequence[str] | None) -> tuple[str, ...]:
    """The lesion types a source annotates, checked (``None``: all of them).

    Raises:
        ValueError: On a name outside :data:`~multitask_dr.lesions.LESIONS`, or none at all.
    """
    if lesions is None:
        return LESIONS
    chosen = tuple(str(lesion).strip().upper() for lesion in lesions)
    unknown = [lesion for lesion in chosen if lesion not in LESIONS]
    if unknown or not chosen:
        raise ValueError(f"annotated_lesions must name some of {LESIONS}, got {list(lesions)}")
    return tuple(lesion for lesion in LESIONS if lesion in chosen)


def unscore_unannotated(mask: MaskT, annotated: Sequence[str], channel_axis: int = -1) -> MaskT:
    """Mark the channels of lesion types a source does not annotate as unscored.

    A source that outlines only exudates says nothing about haemorrhages: their channel is
    :data:`~multitask_dr.lesions.IGNORE_INDEX` everywhere (no loss, no metric, no lesion-centred
    patch, no true overlay), never background.

    Args:
        mask: ``(H, W, L)`` array, or ``(L, H, W)`` tensor with ``channel_axis=0``.
        annotated: Lesion names the source annotates.
        channel_axis: Where the lesion channels are.

    Returns:
        The mask (a copy when a channel changed).
    """
    missing = [c for c, lesion in enumerate(LESIONS) if lesion not in annotated]
    if not missing:
        return mask
    mask = mask.copy() if isinstance(mask, np.ndarray) else mask.clone()
    index = [slice(None)] * mask.ndim
    index[channel_axis] = missing
    mask[tuple(index)] = IGNORE_INDEX
    return mask


@dataclass(frozen=True)
class TJDRRecord:
    """Where one sample's files are.

    ``image == annotation`` for a Labelme file that carries its own image (``imageData``) and
    has no image file beside it.
    """

    name: str
    image: Path
    annotation: Path
    grade: int = NO_GRADE


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


def parse_grade(text: str | None) -> int:
    """An ICDR grade 0-4 from a label file's cell (the one grade-range check of every reader).

    Raises:
        ValueError: Saying why (not an integer, outside 0-4), without the file or line.
    """
    try:
        grade = int(str(text).strip())
    except ValueError:
        raise ValueError(f"grade {text!r} is not an integer") from None
    if not 0 <= grade < NUM_GRADES:
        raise ValueError(f"grade {grade} is outside 0-{NUM_GRADES - 1}")
    return grade


def read_grades(path: Path, problems: ProblemLog) -> dict[str, int]:
    """Read ``grades.csv`` (UTF-8, columns ``image``, ``grade``); bad rows are reported, skipped.

    An unreadable file (not UTF-8, a folder, not CSV) is reported as a whole and gives no
    grades: every image then counts as ungraded.
    """
    grades: dict[str, int] = {}
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        problems.report(
            path, f"not UTF-8 text (byte 0x{byte:02x} at offset {error.start}); save it as UTF-8"
        )
        return grades
    except OSError as error:
        problems.report(path, f"cannot read grades CSV: {describe_error(error)}")
        return grades
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if reader.fieldnames is None or not {"image", "grade"} <= set(reader.fieldnames):
            problems.report(path, "grades CSV needs the columns 'image' and 'grade'")
            return grades
        for row in reader:
            try:
                grade = parse_grade(row["grade"])
            except ValueError as error:
                problems.report(path, f"line {reader.line_num}: {error}", "row")
                continue
            grades[Path(row["image"] or "").stem] = grade
    except csv.Error as error:
        problems.report(path, f"line {reader.line_num}: not valid CSV ({error})")
    return grades


def _files(folder: Path, suffixes: Sequence[str], problems: ProblemLog) -> dict[str, Path]:
    """Files in ``folder`` ending in one of ``suffixes`` (any case), by stem.

    A folder named like such a file (``003.png/``) is reported, not taken for a file.
    """
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        if path.is_dir():
            problems.report(path, "is a folder, not a file")
            continue
        found[path.stem] = path
    return found


def find_records(
    split_dir: Path, annotation: AnnotationFormat, problems: ProblemLog, layout: Layout = "tjdr"
) -> list[TJDRRecord]:
    """Pair images with annotations in one split folder.

    Args:
        split_dir: ``root/train`` or ``root/test``; for ``layout="flat"`` the folder itself.
        annotation: ``png`` (release masks), ``labelme`` (JSON beside the images) or ``auto``
            (the PNG when present, else the JSON). A flat folder holds Labelme JSON only.
        problems: Where missing partners and size mismatches are reported.
        layout: ``tjdr`` (``image/`` and ``annotation/`` folders) or ``flat`` (images and
            Labelme JSON side by side).

    Returns:
        One record per usable image, sorted by name.
    """
    if layout == "flat":
        if annotation == "png":
            raise ValueError("a flat folder holds Labelme JSON: use annotation 'labelme'")
        annotation = "labelme"
        image_dir = annotation_dir = split_dir
    else:
        image_dir, annotation_dir = split_dir / "image", split_dir / "annotation"
    if not image_dir.is_dir():
        raise DataError("no 'image' folder (expected the TJDR layout, see README)", path=split_dir)
    images = _files(image_dir, IMAGE_SUFFIXES, problems)
    pngs = _files(annotation_dir, (".png",), problems) if annotation != "labelme" else {}
    jsons: dict[str, Path] = {}
    if annotation != "png":
        for folder in dict.fromkeys((image_dir, annotation_dir)):
            jsons |= _files(folder, (".json",), problems)
    grades_path = split_dir / "grades.csv"
    grades = read_grades(grades_path, problems) if grades_path.exists() else {}

    candidates = {"png": pngs, "labelme": jsons, "auto": jsons | pngs}[annotation]
    records = []
    for stem, image_path in images.items():
        annotation_path = candidates.get(stem)
        if annotation_path is None:
            looked = [annotation_dir / f"{stem}.png", image_dir / f"{stem}.json"]
            problems.report(
                image_path, f"no annotation found (looked for {', '.join(map(str, looked))})"
            )
            continue
        # Headers only: an empty or non-image file costs its sample here, not the whole run.
        try:
            size = image_size(image_path)
            if annotation_path.suffix.lower() == ".png":
                mask_size = image_size(annotation_path)
                if mask_size != size:
                    problems.report(
                        annotation_path,
                        f"size {mask_size} differs from its image {image_path} {size}",
                    )
                    continue
        except DataError as error:
            problems.report(error.path or image_path, error.reason)
            continue
        records.append(TJDRRecord(stem, image_path, annotation_path, grades.get(stem, NO_GRADE)))
    for stem, path in sorted(candidates.items()):
        if stem in images:
            continue
        if path.suffix.lower() == ".json" and _has_embedded_image(path):
            # Labelme can store the image inside the JSON (imageData): the file is both.
            records.append(TJDRRecord(stem, path, path, grades.get(stem, NO_GRADE)))
        else:
            problems.report(path, f"annotation has no image {image_dir / stem}.png (or .jpg)")
    return sorted(records, key=lambda record: record.name)


def _has_embedded_image(path: Path) -> bool:
    """Whether a Labelme file stores its image (``imageData``); unreadable files do not."""
    try:
        return bool(json.loads(path.read_bytes()).get("imageData"))
    except (OSError, ValueError, AttributeError):
        return False


def file_digest(*paths: Path) -> str:
    """Short content hash of files (cache keys, duplicate detection).

    Raises:
        DataError: When a file cannot be read.
    """
    digest = hashlib.sha1()
    for path in dict.fromkeys(paths):  # a Labelme file with its own image is hashed once
        try:
            digest.update(path.read_bytes())
        except OSError as error:
            raise DataError(f"cannot read file: {describe_error(error)}", path=path) from error
    return digest.hexdigest()[:16]


# (path, size, mtime_ns) of each file -> file_digest: shared by every dataset of the process
# (and inherited by DataLoader workers), so each file is read and hashed once, not per sample.
_DIGESTS: dict[tuple[tuple[str, int, int], ...], str] = {}


def cached_file_digest(*paths: Path) -> str:
    """:func:`file_digest`, recomputed only when a file's size or modification time changes.

    Cache keys are taken on every sample load: hashing a 2048² photograph and its annotation
    each time costs more than reading the cached sample.
    """
    stamp = tuple((str(p), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths)
    digest = _DIGESTS.get(stamp)
    if digest is None:
        digest = _DIGESTS[stamp] = file_digest(*paths)
    return digest


class TJDRDataset(Dataset):
    """TJDR images with lesion masks from release PNGs or Labelme JSON.

    Args:
        root: Dataset root holding ``train/`` and ``test/``.
        split: ``train`` or ``test`` (a validation split is carved by the datamodule).
        annotation: Which annotation form to read: ``png``, ``labelme`` or ``auto``.
        image_size: Working resolution after cropping to the field of view; ``None`` keeps it.
        crop_fov: Crop to the retina's bounding square before resizing.
        label_map: Labelme label -> lesion table (case-insensitive); defaults to
            :data:`~multitask_dr.lesions.DEFAULT_LABEL_MAP`.
        strict: Raise on the first bad file instead of reporting and skipping it.
        names: Keep only these sample names (used by the datamodule's splits).
        transform: Applied to each sample dict.
        cache_dir: Folder for preprocessed ``.npz`` samples (keyed by file hash and settings).
        rasterize: How Labelme JSON becomes masks: ``labelme`` (Labelme's own converter,
            pixel for pixel) or ``pixel_centre`` (area-unbiased); see
            :mod:`multitask_dr.datasets.rasterize`. Release PNGs are read as they are.
        layout: ``tjdr`` (the release layout), ``flat`` (a plain Labelme folder: ``split``
            is then ignored and ``names`` chooses the split's images), or a public dataset
            with one mask file per lesion: ``idrid``, ``ddr``, ``fgadr`` (``root`` is that
            dataset's root, ``split`` one of its official splits, ``annotation`` and
            ``label_map`` unused; see :mod:`multitask_dr.datasets.lesion_files`).
        annotated_lesions: Lesion types this source annotates (``None``: all four); the
            others' channels are unscored (:func:`unscore_unannotated`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        annotation: AnnotationFormat = "auto",
        image_size: int | None = None,
        crop_fov: bool = True,
        label_map: Mapping[str, str | None] | None = None,
        strict: bool = False,
        names: Sequence[str] | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_dir: str | Path | None = None,
        rasterize: RasterizeRule = DEFAULT_RASTERIZE,
        layout: Layout = "tjdr",
        annotated_lesions: Sequence[str] | None = None,
    ) -> None:
        self.rasterize = check_rule(rasterize)
        if layout not in ("tjdr", "flat", *PER_LESION_LAYOUTS):
            raise ValueError(
                f"layout must be one of {('tjdr', 'flat', *PER_LESION_LAYOUTS)}, got {layout!r}"
            )
        self.layout: Layout = layout
        self.annotated_lesions = check_lesions(annotated_lesions)
        self.root = Path(root)
        self.split = split
        self.annotation = annotation
        self.image_size = image_size
        self.crop_fov = crop_fov
        self.label_map = dict(DEFAULT_LABEL_MAP if label_map is None else label_map)
        self.problems = ProblemLog(strict=strict)
        self.transform = transform
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.records: list[TJDRRecord | LesionFilesRecord]
        if layout in PER_LESION_LAYOUTS:
            if not self.root.is_dir():
                raise DataError(f"{layout} root does not exist", path=self.root)
            self.records = list(find_lesion_files(self.root, layout, split, self.problems))
            if names is not None:
                wanted = set(names)
                self.records = [r for r in self.records if r.name in wanted]
            return
        split_dir = self.root if layout == "flat" else self.root / split
        if not split_dir.is_dir():
            raise DataError(
                f"split folder does not exist (TJDR root is {self.root})", path=split_dir
            )
        self.records = list(find_records(split_dir, annotation, self.problems, layout))
        if names is not None:
            wanted = set(names)
            self.records = [r for r in self.records if r.name in wanted]

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, names: Sequence[str]) -> TJDRDataset:
        """The same dataset restricted to ``names`` (no re-indexing, no second problem report)."""
        wanted = set(names)
        part = copy.copy(self)
        part.records = [r for r in self.records if r.name in wanted]
        return part

    def load_raw(self, record: TJDRRecord | LesionFilesRecord) -> tuple[np.ndarray, np.ndarray]:
        """Read one record's full-resolution image and ``(H, W, 4)`` mask.

        Raises:
            DataError: When a file is unreadable or the two disagree in size.
            ReportedError: When the problem is already in :attr:`problems` (Labelme files).
        """
        if isinstance(record, LesionFilesRecord):
            image = read_image(record.image)
            return image, read_lesion_files(record, image.shape[:2])
        if record.image == record.annotation:
            return self._labelme_with_image(record.annotation)
        image = read_image(record.image)
        if record.annotation.suffix.lower() == ".json":
            mask = self._labelme_mask(record.annotation, image.shape[:2])
        else:
            mask = read_release_mask(record.annotation)
        if mask.shape[:2] != image.shape[:2]:
            raise DataError(
                f"mask size {mask.shape[1::-1]} differs from image {record.image} "
                f"{image.shape[1::-1]}",
                path=record.annotation,
            )
        return image, mask

    def _read_labelme(self, path: Path) -> LabelmeAnnotation:
        from multitask_dr.datasets.labelme import read_labelme

        parsed = read_labelme(path, label_map=self.label_map, problems=self.problems)
        if parsed is None:  # lenient mode: read_labelme has logged why
            raise ReportedError("unreadable Labelme file", path=path)
        return parsed

    def _labelme_mask(self, path: Path, shape: tuple[int, int]) -> np.ndarray:
        from multitask_dr.datasets.labelme import rasterize_annotation

        return rasterize_annotation(
            self._read_labelme(path), height=shape[0], width=shape[1], rasterize=self.rasterize
        )

    def _labelme_with_image(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask of a Labelme file that carries its image in ``imageData``."""
        from multitask_dr.datasets.labelme import load_labelme_image, rasterize_annotation

        parsed = self._read_labelme(path)
        if parsed.image_data is None:
            raise DataError(
                "its embedded imageData cannot be decoded and no image file is beside it",
                path=path,
            )
        image = load_labelme_image(parsed, self.problems)
        if image is None:
            raise ReportedError("embedded image unusable", path=path)
        height, width = image.shape[:2]
        return image, rasterize_annotation(
            parsed, height=height, width=width, rasterize=self.rasterize
        )

    def cache_key(self, record: TJDRRecord | LesionFilesRecord) -> str:
        """Cache key: content of its files plus every setting that changes the output."""
        settings = f"{self.image_size}|{self.crop_fov}|{sorted(self.label_map.items())}"
        if isinstance(record, LesionFilesRecord):
            # The layout decides what an absent mask file means.
            settings = f"{self.image_size}|{self.crop_fov}|{self.layout}"
            return (
                f"{record.name}-{cached_file_digest(*record.files)}-"
                + hashlib.sha1(settings.encode()).hexdigest()[:8]
            )
        if record.annotation.suffix == ".json":
            # Only JSON is rasterized: release PNGs keep their cache whatever the rule.
            settings += f"|rasterize={self.rasterize}"
        return (
            f"{record.name}-{cached_file_digest(record.image, record.annotation)}-"
            + hashlib.sha1(settings.encode()).hexdigest()[:8]
        )

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed (FOV-cropped, resized) image and mask, through the cache when set."""
        record = self.records[index]
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / f"{self.cache_key(record)}.npz"
            if cached.exists():
                try:
                    with np.load(cached) as stored:
                        return stored["image"], stored["mask"]
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                    # A damaged cache entry is only a lost shortcut: decode the files again.
                    log.warning("ignoring damaged cache file %s (%s)", cached, error)
        image, mask = self.load_raw(record)
        image, mask = crop_and_resize(image, mask, self.image_size, self.crop_fov)
        assert mask is not None
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename so a crash (or a parallel worker) never leaves half a file.
            tmp = cached.with_suffix(f".{id(self)}.tmp.npz")
            np.savez(tmp, image=image, mask=mask)
            tmp.replace(cached)
        return image, mask

    def verify(self) -> None:
        """Decode every sample once (filling the cache) and drop the unreadable ones.

        In strict mode the first bad file raises; otherwise each is reported and skipped, so a
        truncated image or a mask with a foreign palette index costs that sample only.
        """
        kept = []
        for index, record in enumerate(self.records):
            try:
                self.load(index)
            except ReportedError:
                continue  # already in the problem log, under its file
            except DataError as error:
                self.problems.report(error.path or record.image, error.reason, "sample")
            else:
                kept.append(record)
        self.records = kept

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image, mask = self.load(index)
        mask = unscore_unannotated(mask, self.annotated_lesions)
        sample: dict[str, Any] = {"image": image, "mask": mask, "grade": record.grade}
        sample["name"] = record.name
        if self.transform is None:
            return sample
        sample = self.transform(sample)
        # Again after augmentation: what a rotation or crop fills in is background only for
        # the lesion types this source annotates.
        sample["mask"] = unscore_unannotated(sample["mask"], self.annotated_lesions, 0)
        return sample
