"""Dataset health report behind ``multitask-dr check-data``.

For a TJDR-layout root: images per split, image sizes, annotation forms, per-lesion image and
pixel counts, lesion-free images, **duplicate images by content hash** (the public TJDR release
has byte-identical images with different masks, two of them crossing the train/test split) and
every reading problem. For a RetinaMNIST root: grades per split and bad label rows.

Counts cover the images that can be used (read and decoded with their annotation); the others
are listed under problems. Exit status of ``check-data``: 0 clean, 1 problems found (an empty
split is one), 2 the data cannot be checked at all (the command line prints why in one line).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multitask_dr.datasets.file_digest import file_digest
from multitask_dr.datasets.lesion_files import LESION_FILE_SPLITS, LesionFilesRecord
from multitask_dr.datasets.problems import DataError, ReportedError
from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.lesions import LESIONS, NUM_GRADES

#: ``check-data --format`` value -> graded layout (:mod:`multitask_dr.datasets.graded`).
GRADED_FORMATS = {
    "eyepacs": "eyepacs",
    "aptos": "aptos",
    "messidor2": "messidor2",
    "idrid-grading": "idrid",
    "ddr-grading": "ddr",
}
FORMATS = ("tjdr", "retinamnist", *LESION_FILE_SPLITS, *GRADED_FORMATS)


@dataclass
class SplitReport:
    """Counts for one split."""

    images: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    annotation_forms: dict[str, int] = field(default_factory=dict)
    images_with: dict[str, int] = field(default_factory=dict)
    pixels: dict[str, int] = field(default_factory=dict)
    lesion_free: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    ungradable: int = 0


@dataclass
class DataReport:
    """The whole report; ``duplicates`` lists groups of identical images as ``split/name``."""

    root: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    duplicates: list[list[str]] = field(default_factory=list)
    cross_split_duplicates: list[list[str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """Human-readable summary."""
        lines = [f"Dataset report for {self.root}"]
        for split, rep in self.splits.items():
            lines.append(f"\n[{split}] {rep.images} images")
            if rep.sizes:
                lines.append("  sizes: " + ", ".join(f"{k} x{v}" for k, v in rep.sizes.items()))
            if rep.annotation_forms:
                forms = ", ".join(f"{k} x{v}" for k, v in rep.annotation_forms.items())
                lines.append(f"  annotations: {forms}")
            if rep.images_with:
                lines.append("  images with each lesion: " + _pairs(rep.images_with))
                lines.append("  lesion pixels (native resolution): " + _pairs(rep.pixels))
                lines.append(f"  lesion-free images: {rep.lesion_free}")
            if rep.grades:
                lines.append("  grades: " + _pairs(rep.grades))
            if rep.ungradable:
                lines.append(f"  ungradable images skipped: {rep.ungradable}")
        lines.append(f"\nduplicate image groups (identical bytes): {len(self.duplicates)}")
        lines += [f"  - {' = '.join(group)}" for group in self.duplicates]
        if self.cross_split_duplicates:
            lines.append(
                f"WARNING: {len(self.cross_split_duplicates)} duplicate group(s) cross splits "
                "(test images also seen in training):"
            )
            lines += [f"  - {' = '.join(group)}" for group in self.cross_split_duplicates]
        lines.append(f"\nproblems: {len(self.problems)}")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items())


def check_tjdr(
    root: str | Path, annotation: str = "auto", strict: bool = False, layout: str = "tjdr"
) -> DataReport:
    """Report on a lesion dataset (decodes every mask once, at native resolution).

    Args:
        root: Folder holding ``train/`` and/or ``test/``, or with ``layout`` ``idrid``,
            ``ddr`` or ``fgadr`` that dataset's root (its official splits are reported).
        annotation: ``auto``, ``png`` or ``labelme`` (TJDR layout only).
        strict: Raise on the first problem instead of listing it.
        layout: ``tjdr`` or a per-lesion-file layout (:data:`LESION_FILE_SPLITS`).

    Returns:
        The report.
    """
    root = Path(root)
    report = DataReport(str(root))
    by_hash: dict[str, list[str]] = defaultdict(list)
    if not root.is_dir():
        raise DataError("not a folder" if root.exists() else "does not exist", path=root)
    if layout in LESION_FILE_SPLITS:
        splits = list(LESION_FILE_SPLITS[layout])
    else:
        splits = [s for s in ("train", "test") if (root / s).is_dir()]
    if not splits:
        raise DataError("no train/ or test/ folder (expected the TJDR layout)", path=root)
    for split in splits:
        dataset = TJDRDataset(
            root,
            split,
            annotation=annotation,  # type: ignore[arg-type]
            strict=strict,
            layout=layout,  # type: ignore[arg-type]
        )
        rep = SplitReport()
        sizes: Counter[str] = Counter()
        forms: Counter[str] = Counter()
        with_lesion: Counter[str] = Counter({name: 0 for name in LESIONS})
        pixels: Counter[str] = Counter({name: 0 for name in LESIONS})
        grades: Counter[str] = Counter()
        for record in dataset.records:
            try:
                image, mask = dataset.load_raw(record)
            except ReportedError:
                continue  # listed under its file already
            except DataError as error:
                dataset.problems.report(error.path or record.image, error.reason, "sample")
                continue
            rep.images += 1
            height, width = image.shape[:2]
            sizes[f"{width}x{height}"] += 1
            if isinstance(record, LesionFilesRecord):
                forms["mask file per lesion"] += 1
            else:
                forms[record.annotation.suffix.lstrip(".").lower()] += 1
            by_hash[file_digest(record.image)].append(f"{split}/{record.name}")
            if record.grade >= 0:
                grades[str(record.grade)] += 1
            present = (mask == 1).reshape(-1, len(LESIONS)).sum(axis=0)
            for name, count in zip(LESIONS, present, strict=True):
                pixels[name] += int(count)
                with_lesion[name] += int(count > 0)
            rep.lesion_free += int(present.sum() == 0)
        rep.sizes, rep.annotation_forms = dict(sizes), dict(forms)
        rep.images_with, rep.pixels = dict(with_lesion), dict(pixels)
        rep.grades = {str(g): grades[str(g)] for g in range(NUM_GRADES) if grades[str(g)]}
        if rep.images == 0:
            dataset.problems.report(root / split, "no usable images", "split")
        report.splits[split] = rep
        report.problems += [str(p) for p in dataset.problems.problems]
    report.duplicates = sorted(sorted(g) for g in by_hash.values() if len(g) > 1)
    report.cross_split_duplicates = [
        g for g in report.duplicates if len({name.split("/")[0] for name in g}) > 1
    ]
    return report


def check_graded(root: str | Path, layout: str, strict: bool = False) -> DataReport:
    """Grades and image sizes per official split of a grading-only public dataset.

    Ungradable images are skipped and counted per split (not problems: the exit status stays
    0); every unusable row and every image whose header cannot be read is a problem.

    Args:
        root: The dataset's root (:mod:`multitask_dr.datasets.graded`).
        layout: ``eyepacs``, ``aptos``, ``messidor2``, ``idrid`` or ``ddr``.
        strict: Raise on the first problem instead of listing it.
    """
    from multitask_dr.datasets.graded import UNGRADABLE, GradedFolderDataset, official_splits
    from multitask_dr.datasets.images import image_size

    report = DataReport(str(root))
    for split in official_splits(Path(root), layout):  # type: ignore[arg-type]
        dataset = GradedFolderDataset(root, layout, split, strict=strict)  # type: ignore[arg-type]
        sizes: Counter[str] = Counter()
        grades: Counter[str] = Counter()
        images = 0
        for record in dataset.records:
            try:
                width, height = image_size(record.image)
            except DataError as error:
                dataset.problems.report(error.path or record.image, error.reason, "sample")
                continue
            images += 1
            sizes[f"{width}x{height}"] += 1
            grades[str(record.grade)] += 1
        if images == 0:
            dataset.problems.report(dataset.root, f"no usable {split} images", "split")
        report.splits[split] = SplitReport(
            images=images,
            sizes=dict(sizes),
            grades={str(g): grades[str(g)] for g in range(NUM_GRADES) if grades[str(g)]},
            ungradable=dataset.ungradable,
        )
        # Ungradable images are counted per split above: the data says so, it is no fault.
        report.problems += [str(p) for p in dataset.problems.problems if p.skipped != UNGRADABLE]
    return report


def check_retinamnist(root: str | Path, size: int = 28, strict: bool = False) -> DataReport:
    """Grades per split of a RetinaMNIST file, and its bad label rows.

    Args:
        root: Folder holding medmnist's npz files.
        size: Which file (28, 64, 128, 224).
        strict: Raise on the first bad row instead of listing it.
    """
    from multitask_dr.datasets.retinamnist import RetinaMNISTDataset

    report = DataReport(str(root))
    for split in ("train", "val", "test"):
        dataset = RetinaMNISTDataset(root, split, size, strict=strict)
        if len(dataset) == 0:
            dataset.problems.report(dataset.root, f"no usable {split} images", "split")
        counts = np.bincount(dataset.grades, minlength=NUM_GRADES)
        report.splits[split] = SplitReport(
            images=len(dataset), grades={str(g): int(c) for g, c in enumerate(counts)}
        )
        report.problems += [str(p) for p in dataset.problems.problems]
    return report


def main(argv: list[str] | None = None) -> int:
    """``multitask-dr check-data``: print a dataset report; exit 1 when problems were found.

    Raises:
        DataError: When the data cannot be checked (missing root, unreadable npz, or the first
            problem with ``--strict``); the command line prints it as one line, exit 2.
    """
    parser = argparse.ArgumentParser(
        prog="multitask-dr check-data",
        description="Report counts, sizes, duplicate images and reading problems of a dataset.",
    )
    parser.add_argument("root", type=Path, help="the dataset's root folder")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tjdr",
        help="tjdr, retinamnist; lesion layouts idrid, ddr, fgadr; grading layouts "
        "eyepacs, aptos, messidor2, idrid-grading, ddr-grading",
    )
    parser.add_argument("--annotation", choices=("auto", "png", "labelme"), default="auto")
    parser.add_argument("--size", type=int, default=28, help="RetinaMNIST size")
    parser.add_argument("--strict", action="store_true", help="stop at the first problem")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.format == "retinamnist":
        report = check_retinamnist(args.root, args.size, args.strict)
    elif args.format in GRADED_FORMATS:
        report = check_graded(args.root, GRADED_FORMATS[args.format], args.strict)
    else:
        report = check_tjdr(args.root, args.annotation, args.strict, args.format)
    print(json.dumps(asdict(report), indent=2) if args.json else report.to_text())
    return 1 if report.problems else 0


def report_dict(report: DataReport) -> dict[str, Any]:
    """The report as plain data (for notebooks and JSON)."""
    return asdict(report)
