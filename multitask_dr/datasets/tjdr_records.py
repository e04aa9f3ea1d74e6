"""Where a TJDR-layout (or flat Labelme) folder's samples are: images paired with annotations.

Layouts (the public release, see ``shared/data/TJDR_FORMAT.md``, or a plain Labelme folder) are
described in :mod:`multitask_dr.datasets.tjdr`; :func:`find_records` pairs each image with its
release PNG or Labelme JSON and its grade, reporting what has no partner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch

from multitask_dr.datasets.grade_labels import read_grades
from multitask_dr.datasets.images import (
    IMAGE_SUFFIXES,
    image_size,
)
from multitask_dr.datasets.problems import DataError, ProblemLog
from multitask_dr.lesions import NO_GRADE

AnnotationFormat = Literal["auto", "png", "labelme"]
Layout = Literal["tjdr", "flat", "idrid", "ddr", "fgadr"]

#: Layouts with one mask file per lesion type (:mod:`multitask_dr.datasets.lesion_files`).
PER_LESION_LAYOUTS = ("idrid", "ddr", "fgadr")
MaskT = TypeVar("MaskT", np.ndarray, torch.Tensor)


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
        raise DataError(
            "no 'image' folder (expected the TJDR layout, see docs/data.md)", path=split_dir
        )
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
