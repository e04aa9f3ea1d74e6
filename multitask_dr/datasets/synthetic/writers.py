"""The synthetic datasets on disk, in the real formats, through the readers' own writers.

Each format is written by the function beside its reader: release PNGs by
:func:`~multitask_dr.datasets.release_mask.release_palette_image`, Labelme JSON by
:func:`~multitask_dr.datasets.labelme.write_labelme`, ``grades.csv`` by
:func:`~multitask_dr.datasets.grade_labels.write_grades`, RetinaMNIST files by
:func:`~multitask_dr.datasets.retinamnist.write_npz` and EyePACS labels by
:func:`~multitask_dr.datasets.graded.write_eyepacs_labels`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from PIL import Image

from multitask_dr.datasets.grade_labels import write_grades
from multitask_dr.datasets.graded import write_eyepacs_labels
from multitask_dr.datasets.labelme import labelme_document, write_labelme
from multitask_dr.datasets.release_mask import release_palette_image
from multitask_dr.datasets.retinamnist import SIZES, npz_path, write_npz
from multitask_dr.datasets.synthetic.grade import Phantom
from multitask_dr.datasets.synthetic.masks import labelme_shape, release_mask
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import (
    check_grade_probs,
    image_rng,
    sample_grade,
)

#: Sizes medmnist publishes RetinaMNIST at.
RETINAMNIST_SIZES: Final[tuple[int, ...]] = SIZES

#: RetinaMNIST phantoms are rendered once at this size and area-resized to the others.
RETINAMNIST_RENDER_SIZE: Final[int] = 224

#: Numbered files this module owns inside ``image/`` and ``annotation/`` (stale ones are removed).
_OWNED_FILE = re.compile(r"^\d+\.(png|json)$")


def phantom_document(phantom: Phantom, image_name: str) -> dict[str, object]:
    """The Labelme 5.x JSON document of a phantom (``imageData`` null, image beside it)."""
    height, width = phantom.image.shape[:2]
    shapes = [labelme_shape(lesion) for lesion in phantom.lesions]
    return labelme_document(shapes, image_name, height, width)


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete numbered files this module would write that are not in ``keep``.

    Without this, rewriting a folder with fewer images (or without Labelme JSON) would leave
    old images and annotations that the loaders would pick up.
    """
    for path in folder.iterdir():
        if path.is_file() and _OWNED_FILE.match(path.name) and path.name not in keep:
            path.unlink()


def write_tjdr(
    root: str | Path,
    *,
    n_train: int = 32,
    n_test: int = 8,
    size: int = 256,
    seed: int = 0,
    labelme: bool = True,
    grade_probs: Sequence[float] | None = None,
) -> Path:
    """Write a synthetic dataset in the TJDR release layout (plus Labelme JSON and grades).

    Layout::

        root/{train,test}/image/NNN.png        RGB
        root/{train,test}/image/NNN.json       Labelme 5.7.0 (when ``labelme``)
        root/{train,test}/annotation/NNN.png   mode "P", 0 bg 1 EX 2 HE 3 MA 4 SE
        root/{train,test}/grades.csv           image,grade,deciding_lesion

    Numbered ``.png``/``.json`` files already in those folders that this call does not write
    (from an earlier, larger run) are deleted, so the folder holds exactly this dataset.

    Args:
        root: Output folder (created).
        n_train: Number of training images.
        n_test: Number of test images.
        size: Image side in pixels.
        seed: Dataset seed.
        labelme: Also write a Labelme JSON beside each image.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    check_grade_probs(grade_probs)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_test={n_test}")
    for split, count in (("train", n_train), ("test", n_test)):
        image_dir, annotation_dir = root / split / "image", root / split / "annotation"
        image_dir.mkdir(parents=True, exist_ok=True)
        annotation_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        written_images, written_annotations = set(), set()
        for index in range(count):
            rng = image_rng(seed, "tjdr", split, index)
            phantom = render_phantom(size, sample_grade(rng, grade_probs), rng)
            stem = f"{index + 1:03d}"
            Image.fromarray(phantom.image).save(image_dir / f"{stem}.png")
            release_palette_image(release_mask(phantom)).save(annotation_dir / f"{stem}.png")
            written_images.add(f"{stem}.png")
            written_annotations.add(f"{stem}.png")
            if labelme:
                write_labelme(image_dir / f"{stem}.json", phantom_document(phantom, f"{stem}.png"))
                written_images.add(f"{stem}.json")
            rows.append((stem, phantom.grade, phantom.deciding_lesion or ""))
        _remove_stale(image_dir, written_images)
        _remove_stale(annotation_dir, written_annotations)
        write_grades(root / split / "grades.csv", rows)
    return root


def retinamnist_filename(size: int) -> str:
    """The file name medmnist uses for RetinaMNIST at ``size`` (the reader's own table)."""
    return npz_path(".", size).name


def write_retinamnist(
    root: str | Path,
    *,
    sizes: Sequence[int] = RETINAMNIST_SIZES,
    n_train: int = 200,
    n_val: int = 50,
    n_test: int = 100,
    seed: int = 0,
    grade_probs: Sequence[float] | None = None,
) -> list[Path]:
    """Write synthetic RetinaMNIST files with medmnist's names, keys, dtypes and shapes.

    Each eye is rendered once at 224 px and area-resized to every requested size, so all
    files show the same eyes. Keys: ``{train,val,test}_images`` ``(N, S, S, 3)`` uint8 and
    ``{train,val,test}_labels`` ``(N, 1)`` uint8, as in the official file.

    Args:
        root: Output folder (created).
        sizes: Any of 28, 64, 128, 224.
        n_train: Training images.
        n_val: Validation images.
        n_test: Test images.
        seed: Dataset seed.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        The written files, in ``sizes`` order.
    """
    root = Path(root)
    names = [retinamnist_filename(size) for size in sizes]
    check_grade_probs(grade_probs)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if min(counts.values()) < 0:
        raise ValueError(f"image counts must be >= 0, got {counts}")
    images: dict[int, dict[str, np.ndarray]] = {size: {} for size in sizes}
    labels: dict[str, np.ndarray] = {}
    for split, count in counts.items():
        stacks = {size: np.zeros((count, size, size, 3), np.uint8) for size in sizes}
        grades = np.zeros((count, 1), np.uint8)
        for index in range(count):
            rng = image_rng(seed, "retinamnist", split, index)
            phantom = render_phantom(RETINAMNIST_RENDER_SIZE, sample_grade(rng, grade_probs), rng)
            grades[index, 0] = phantom.grade
            for size in sizes:
                stacks[size][index] = (
                    phantom.image
                    if size == RETINAMNIST_RENDER_SIZE
                    else cv2.resize(phantom.image, (size, size), interpolation=cv2.INTER_AREA)
                )
        labels[split] = grades
        for size in sizes:
            images[size][split] = stacks[size]
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / name for name in names]
    for size, path in zip(sizes, paths, strict=True):
        write_npz(path, images[size], labels)
    return paths


def write_eyepacs(
    root: str | Path,
    *,
    n: int = 60,
    size: int = 128,
    seed: int = 0,
    grade_probs: Sequence[float] | None = None,
) -> Path:
    """Write a synthetic grading folder in Kaggle EyePACS's layout.

    ``trainLabels.csv`` (``image,level``) and ``train/<image>.jpeg``, names
    ``<index>_<left|right>`` as Kaggle's; each eye's grade follows its lesions (the grade
    rule), as in the other synthetic sets. Read with
    :class:`~multitask_dr.datamodules.GradedFolderDataModule` (``layout: eyepacs``).

    Args:
        root: Output folder (created).
        n: Images.
        size: Image side in pixels.
        seed: Dataset seed.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        The label file.
    """
    root = Path(root)
    check_grade_probs(grade_probs)
    (root / "train").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        rng = image_rng(seed, "eyepacs", "train", index)
        phantom = render_phantom(size, sample_grade(rng, grade_probs), rng)
        name = f"{index // 2 + 1}_{('left', 'right')[index % 2]}"
        Image.fromarray(phantom.image).save(root / "train" / f"{name}.jpeg", quality=95)
        rows.append((name, phantom.grade))
    labels = root / "trainLabels.csv"
    write_eyepacs_labels(labels, rows)
    return labels


def write_synthetic(
    root: str | Path,
    *,
    seed: int = 0,
    n_train: int = 32,
    n_test: int = 8,
    size: int = 256,
    labelme: bool = True,
    retina_sizes: Sequence[int] = RETINAMNIST_SIZES,
    retina_n_train: int = 200,
    retina_n_val: int = 50,
    retina_n_test: int = 100,
    grade_probs: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write both synthetic datasets: ``root/"tjdr"`` and ``root/"retinamnist"``.

    Args:
        root: Output folder.
        seed: Seed of both datasets (they draw from different streams).
        n_train: TJDR training images.
        n_test: TJDR test images.
        size: TJDR image side.
        labelme: Write Labelme JSON beside the TJDR images.
        retina_sizes: RetinaMNIST sizes to write.
        retina_n_train: RetinaMNIST training images.
        retina_n_val: RetinaMNIST validation images.
        retina_n_test: RetinaMNIST test images.
        grade_probs: Grade distribution for both.

    Returns:
        ``{"tjdr": root/"tjdr", "retinamnist": root/"retinamnist"}``.
    """
    root = Path(root)
    tjdr = write_tjdr(
        root / "tjdr",
        n_train=n_train,
        n_test=n_test,
        size=size,
        seed=seed,
        labelme=labelme,
        grade_probs=grade_probs,
    )
    write_retinamnist(
        root / "retinamnist",
        sizes=retina_sizes,
        n_train=retina_n_train,
        n_val=retina_n_val,
        n_test=retina_n_test,
        seed=seed,
        grade_probs=grade_probs,
    )
    return {"tjdr": tjdr, "retinamnist": root / "retinamnist"}
