"""Seeded writers of the public datasets' exact folder layouts, with tiny images.

Each writer lays out a few 32x32 photographs (a bright disc on black, so the field-of-view crop
has something to find) and label files exactly as the publisher names them, including each
layout's quirks, and returns what a reader should find.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32


def fundus(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A tiny fake photograph: a noisy reddish disc on a black surround."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < (size * 0.45) ** 2
    colour = np.array([180, 80, 40]) + rng.integers(-20, 20, (size, size, 3))
    return (disc[..., None] * np.clip(colour, 0, 255)).astype(np.uint8)


def _save(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fundus(rng)).save(path)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_eyepacs(root: Path, n: int = 10, seed: int = 0) -> dict[str, int]:
    """Kaggle EyePACS: ``trainLabels.csv`` (``image,level``) and ``train/<image>.jpeg``."""
    rng = np.random.default_rng(seed)
    grades = {
        f"{i}_{side}": (i + j) % 5
        for i in range(n // 2)
        for j, side in enumerate(("left", "right"))
    }
    for name in grades:
        _save(root / "train" / f"{name}.jpeg", rng)
    _write_csv(root / "trainLabels.csv", ["image", "level"], [[k, v] for k, v in grades.items()])
    return grades


def write_eyepacs_test(root: Path, n: int = 4, seed: int = 1) -> dict[str, int]:
    """Kaggle's released EyePACS test labels: ``retinopathy_solution.csv`` and ``test/``."""
    rng = np.random.default_rng(seed)
    grades = {f"{100 + i}_left": i % 5 for i in range(n)}
    for name in grades:
        _save(root / "test" / f"{name}.jpeg", rng)
    rows = [[k, v, "Public" if i % 2 else "Private"] for i, (k, v) in enumerate(grades.items())]
    _write_csv(root / "retinopathy_solution.csv", ["image", "level", "Usage"], rows)
    return grades


def write_aptos(root: Path, n: int = 10, seed: int = 0) -> dict[str, int]:
    """APTOS 2019: ``train.csv`` (``id_code,diagnosis``) and ``train_images/<id_code>.png``."""
    rng = np.random.default_rng(seed)
    grades = {f"{rng.integers(16**11):012x}": i % 5 for i in range(n)}
    for name in grades:
        _save(root / "train_images" / f"{name}.png", rng)
    _write_csv(root / "train.csv", ["id_code", "diagnosis"], [[k, v] for k, v in grades.items()])
    return grades


def write_messidor2(root: Path, n: int = 10, seed: int = 0) -> tuple[dict[str, int], list[str]]:
    """Messidor-2: ``messidor_data.csv`` and ``IMAGES/``; the last two rows are ungradable.

    ``image_id`` keeps its extension (``.png`` or ``.JPG``, both occur); ungradable rows have an
    empty grade, as in the published file. Returns the gradable grades and ungradable names.
    """
    rng = np.random.default_rng(seed)
    rows, grades, ungradable = [], {}, []
    for i in range(n):
        stem = f"20051020_{43808 + i}_0100_PP"
        suffix = ".png" if i % 2 else ".JPG"
        _save(root / "IMAGES" / f"{stem}{suffix}", rng)
        if i >= n - 2:
            rows.append([stem + suffix, "", "", 0])
            ungradable.append(stem)
        else:
            rows.append([stem + suffix, i % 5, i % 2, 1])
            grades[stem] = i % 5
    header = ["image_id", "adjudicated_dr_grade", "adjudicated_dme", "adjudicated_gradable"]
    _write_csv(root / "messidor_data.csv", header, rows)
    return grades, ungradable


def write_idrid_grading(root: Path, n: int = 6, seed: int = 0) -> dict[str, dict[str, int]]:
    """IDRiD sub-challenge B, both splits; names shared by train and test, header quirks kept.

    The CSV header has ``Risk of macular edema `` with its trailing space and two empty
    trailing columns, as the published files do.
    """
    rng = np.random.default_rng(seed)
    base = root / "B. Disease Grading"
    out: dict[str, dict[str, int]] = {}
    for split, folder, csv_name, offset in (
        ("train", "a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv", 0),
        ("test", "b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv", 2),
    ):
        grades = {f"IDRiD_{i:03d}": (i + offset) % 5 for i in range(1, n + 1)}
        for name in grades:
            _save(base / "1. Original Images" / folder / f"{name}.jpg", rng)
        header = ["Image name", "Retinopathy grade", "Risk of macular edema ", "", ""]
        rows = [[k, v, v % 3, "", ""] for k, v in grades.items()]
        _write_csv(base / "2. Groundtruths" / csv_name, header, rows)
        out[split] = grades
    return out


def write_ddr_grading(root: Path, n: int = 6, seed: int = 0) -> dict[str, dict[str, int]]:
    """DDR grading: ``DR_grading/{train,valid,test}/`` and ``<split>.txt`` of ``<file> <grade>``.

    The last image of each split is graded 5 (ungradable). Returns the gradable grades.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, int]] = {}
    for split in ("train", "valid", "test"):
        lines, grades = [], {}
        for i in range(n):
            name = f"007-{split}-{i:04d}"
            _save(root / "DR_grading" / split / f"{name}.jpg", rng)
            grade = 5 if i == n - 1 else i % 5
            lines.append(f"{name}.jpg {grade}")
            if grade != 5:
                grades[name] = grade
        (root / "DR_grading" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        out[split] = grades
    return out


def _lesions(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A random ``(H, W, 4)`` 0/1 mask: a few small squares per lesion inside the disc."""
    mask = np.zeros((size, size, 4), np.uint8)
    for channel in range(4):
        for _ in range(int(rng.integers(1, 3))):
            y, x = rng.integers(size // 4, 3 * size // 4, 2)
            mask[y : y + 3, x : x + 3, channel] = 1
    return mask


def _palette_tif(path: Path, plane: np.ndarray) -> None:
    """A palette TIFF holding 0/1 indices (IDRiD's masks), black and red."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(plane.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.save(path)


IDRID_LESIONS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}


def write_idrid_segmentation(root: Path, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """IDRiD sub-challenge A: train IDRiD_01-03, test IDRiD_04-05, with the quirks.

    ``IDRiD_02`` and ``IDRiD_05`` have no SE file (IDRiD: no soft exudate there, so the
    expected channel is all 0); the test split's ``IDRiD_04_EX.tif`` is RGBA with an opaque
    alpha plane and lesions in red; every split has an ``5. Optic Disc`` folder (not read).
    Returns the expected ``(H, W, 4)`` mask of each image, per split.
    """
    rng = np.random.default_rng(seed)
    base = root / "A. Segmentation"
    out: dict[str, dict[str, np.ndarray]] = {}
    for split, folder, numbers in (
        ("train", "a. Training Set", (1, 2, 3)),
        ("test", "b. Testing Set", (4, 5)),
    ):
        out[split] = {}
        truth = base / "2. All Segmentation Groundtruths" / folder
        for number in numbers:
            name = f"IDRiD_{number:02d}"
            _save(base / "1. Original Images" / folder / f"{name}.jpg", rng)
            mask = _lesions(rng)
            if number in (2, 5):
                mask[..., 3] = 0
            for channel, (lesion, sub) in enumerate(IDRID_LESIONS.items()):
                path = truth / sub / f"{name}_{lesion}.tif"
                if lesion == "SE" and number in (2, 5):
                    continue
                if name == "IDRiD_04" and lesion == "EX":
                    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
                    rgba[..., 0] = mask[..., channel] * 255
                    rgba[..., 3] = 255  # opaque: alpha is not the lesion
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(rgba, mode="RGBA").save(path)
                else:
                    _palette_tif(path, mask[..., channel])
            _palette_tif(truth / "5. Optic Disc" / f"{name}_OD.tif", np.ones((SIZE, SIZE)))
            out[split][name] = mask
    return out


def write_ddr_segmentation(root: Path, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """DDR lesion segmentation: two images per split; ``valid`` has ``segmentation label/``.

    Masks are greyscale TIFFs with 0/255. The train split's second image has no SE file: its
    expected SE channel is unscored (255).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in ("train", "valid", "test"):
        out[split] = {}
        split_dir = root / "lesion_segmentation" / split
        label = split_dir / ("segmentation label" if split == "valid" else "label")
        for i in range(2):
            name = f"20170{i}13102{split[0]}"
            _save(split_dir / "image" / f"{name}.jpg", rng)
            mask = _lesions(rng)
            for channel, lesion in enumerate(("MA", "HE", "EX", "SE")):
                if split == "train" and i == 1 and lesion == "SE":
                    mask[..., channel] = 255
                    continue
                path = label / lesion / f"{name}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask[..., channel] * 255, mode="L").save(path)
            out[split][name] = mask
    return out


FGADR_FOLDERS = {
    "MA": "Microaneurysms_Masks",
    "HE": "Hemohedge_Masks",
    "EX": "HardExudate_Masks",
    "SE": "SoftExudate_Masks",
}


def write_fgadr(root: Path, n: int = 10, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """FGADR Seg-set: ``Original_Images/``, four mask folders, header-less grade CSV.

    Image 0 has no ``SoftExudate_Masks`` entry (expected SE unscored). Returns the expected
    masks and grades by name.
    """
    rng = np.random.default_rng(seed)
    masks, grades = {}, {}
    for i in range(n):
        name = f"{i + 1:04d}_{'ABCD'[i % 4]}"
        _save(root / "Original_Images" / f"{name}.png", rng)
        mask = _lesions(rng)
        for channel, (lesion, folder) in enumerate(FGADR_FOLDERS.items()):
            if i == 0 and lesion == "SE":
                mask[..., channel] = 255
                continue
            path = root / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask[..., channel] * 255, mode="L").save(path)
        masks[name], grades[name] = mask, i % 5
    lines = [f"{name}.png,{grade}" for name, grade in grades.items()]
    (root / "DR_Seg_Grading_Label.csv").write_text("\n".join(lines) + "\n")
    return masks, grades
