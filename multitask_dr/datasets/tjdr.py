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

import hashlib
import logging
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask_dr.datasets.annotated_lesions import check_lesions, unscore_unannotated
from multitask_dr.datasets.file_digest import cached_file_digest
from multitask_dr.datasets.images import read_image
from multitask_dr.datasets.lesion_files import (
    LesionFilesRecord,
    find_lesion_files,
    read_lesion_files,
)
from multitask_dr.datasets.preprocess import crop_and_resize
from multitask_dr.datasets.problems import DataError, ProblemLog, ReportedError
from multitask_dr.datasets.rasterize import DEFAULT_RASTERIZE, RasterizeRule, check_rule
from multitask_dr.datasets.records import RecordsDataset
from multitask_dr.datasets.release_mask import read_release_mask
from multitask_dr.datasets.tjdr_records import (
    PER_LESION_LAYOUTS,
    AnnotationFormat,
    Layout,
    TJDRRecord,
    find_records,
)
from multitask_dr.lesions import DEFAULT_LABEL_MAP

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from multitask_dr.datasets.labelme import LabelmeAnnotation


class TJDRDataset(RecordsDataset):
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
        read_sizes: Further working sizes each sample's image is also read at (the same
            field-of-view crop, resized from the original file, cached alike), as
            ``image_reads``: evaluation reads, normalised by the transform but never
            augmented.
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
        read_sizes: Sequence[int] = (),
    ) -> None:
        self.rasterize = check_rule(rasterize)
        self.read_sizes = tuple(read_sizes)
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
        from multitask_dr.datasets.labelme import rasterize_annotation
        from multitask_dr.datasets.labelme_image import load_labelme_image

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

    def cache_key(self, record: TJDRRecord | LesionFilesRecord, size: int | None = None) -> str:
        """Cache key: content of its files plus every setting that changes the output.

        ``size``: the working size read (``None``: :attr:`image_size`).
        """
        size = self.image_size if size is None else size
        settings = f"{size}|{self.crop_fov}|{sorted(self.label_map.items())}"
        if isinstance(record, LesionFilesRecord):
            # The layout decides what an absent mask file means.
            settings = f"{size}|{self.crop_fov}|{self.layout}"
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

    def load(self, index: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed (FOV-cropped, resized) image and mask, through the cache when set.

        ``size``: the working size (``None``: :attr:`image_size`; another one for
        :attr:`read_sizes`).
        """
        record = self.records[index]
        size = self.image_size if size is None else size
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / f"{self.cache_key(record, size)}.npz"
            if cached.exists():
                try:
                    with np.load(cached) as stored:
                        return stored["image"], stored["mask"]
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                    # A damaged cache entry is only a lost shortcut: decode the files again.
                    log.warning("ignoring damaged cache file %s (%s)", cached, error)
        image, mask = self.load_raw(record)
        image, mask = crop_and_resize(image, mask, size, self.crop_fov)
        assert mask is not None
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename so a crash (or a parallel worker) never leaves half a file.
            tmp = cached.with_suffix(f".{id(self)}.tmp.npz")
            np.savez(tmp, image=image, mask=mask)
            tmp.replace(cached)
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image, mask = self.load(index)
        mask = unscore_unannotated(mask, self.annotated_lesions)
        sample: dict[str, Any] = {"image": image, "mask": mask, "grade": record.grade}
        sample["name"] = record.name
        if self.read_sizes:
            sample["image_reads"] = [self.load(index, size)[0] for size in self.read_sizes]
        if self.transform is None:
            return sample
        sample = self.transform(sample)
        # Again after augmentation: what a rotation or crop fills in is background only for
        # the lesion types this source annotates.
        sample["mask"] = unscore_unannotated(sample["mask"], self.annotated_lesions, 0)
        return sample
