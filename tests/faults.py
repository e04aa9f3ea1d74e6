"""Bad-input fixtures: a small real dataset with exactly one fault planted in it.

:func:`tjdr_dataset` writes an 8-image training split in the TJDR release layout with the
project's seeded generator (:func:`~multitask_dr.datasets.synthetic.writers.write_tjdr`: RGB PNG
photographs, palette PNG masks, Labelme 5 JSON, ``grades.csv``). Each :class:`Fault` then
breaks one file the way real data breaks (emptied, truncated, replaced, re-encoded) and states
what a reader must do about it: the file and reason it must name, and how many images a
lenient reader keeps. :data:`NPZ_FAULTS` does the same for medmnist's RetinaMNIST file.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from multitask_dr.datasets.synthetic.writers import write_retinamnist, write_tjdr

#: Images in the faulty split.
IMAGES = 8
#: Image side (small: the readers' work, not the model's, is under test).
SIZE = 64
#: The sample every fault breaks.
VICTIM = "003"


def tjdr_dataset(root: Path) -> Path:
    """An 8-image TJDR-layout training split under ``root`` (no test split)."""
    write_tjdr(root, n_train=IMAGES, n_test=0, size=SIZE, seed=0)
    shutil.rmtree(root / "test")
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to ``keep`` of its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def embed_image(split: Path, stem: str, data: bytes | None = None) -> Path:
    """Move ``stem``'s image into its Labelme file (``imageData``); return the JSON.

    Args:
        split: The split folder.
        stem: Sample name.
        data: Bytes to embed instead of the image file's (e.g. damaged ones).
    """
    image = split / "image" / f"{stem}.png"
    labelme = split / "image" / f"{stem}.json"
    document = json.loads(labelme.read_text())
    document["imageData"] = base64.b64encode(image.read_bytes() if data is None else data).decode()
    labelme.write_text(json.dumps(document))
    image.unlink()
    return labelme


@dataclass(frozen=True)
class Fault:
    """One fault planted in the dataset.

    Attributes:
        name: Test id.
        plant: Breaks the split folder it is given; returns the file at fault.
        reason: Regular expression the problem's reason must match (after the file name).
        kept: Images a lenient reader keeps.
        annotation: Annotation form to read with (``png`` or ``labelme``).
        problems: How many problems a lenient reader lists (one per fact, none twice).
    """

    name: str
    plant: Callable[[Path], Path]
    reason: str
    kept: int = IMAGES - 1
    annotation: str = "png"
    problems: int = 1


def _image(split: Path) -> Path:
    return split / "image" / f"{VICTIM}.png"


def _mask(split: Path) -> Path:
    return split / "annotation" / f"{VICTIM}.png"


def _emptied(locate: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def plant(split: Path) -> Path:
        locate(split).write_bytes(b"")
        return locate(split)

    return plant


def _truncated(locate: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def plant(split: Path) -> Path:
        truncate(locate(split))
        return locate(split)

    return plant


def _text_as_png(split: Path) -> Path:
    _image(split).write_text("this is a text file, not a PNG\n")
    return _image(split)


def _folder_as_png(split: Path) -> Path:
    _image(split).unlink()
    _image(split).mkdir()
    return _image(split)


def _rgb_mask(split: Path) -> Path:
    Image.open(_mask(split)).convert("RGB").save(_mask(split))
    return _mask(split)


def _broken_json(split: Path) -> Path:
    path = split / "image" / f"{VICTIM}.json"
    path.write_text('{"version": "5.7.0", "shapes": [')
    return path


def _embedded_valid(split: Path) -> Path:
    return embed_image(split, VICTIM)


def _embedded_damaged(split: Path) -> Path:
    return embed_image(split, VICTIM, data=_image(split).read_bytes()[:300])


def _grades_utf16(split: Path) -> Path:
    path = split / "grades.csv"
    path.write_bytes(path.read_text().encode("utf-16"))
    return path


TJDR_FAULTS: tuple[Fault, ...] = (
    Fault("zero-byte image", _emptied(_image), r"cannot read image: empty file \(0 bytes\)"),
    Fault("text file named .png", _text_as_png, r"cannot read image: not an image file"),
    # Also listed: its mask, now without an image.
    Fault("folder named 003.png", _folder_as_png, r"is a folder, not a file", problems=2),
    Fault("truncated image", _truncated(_image), r"cannot read image: truncated or damaged"),
    Fault("zero-byte mask", _emptied(_mask), r"cannot read image: empty file \(0 bytes\)"),
    Fault("truncated mask", _truncated(_mask), r"cannot read image: truncated or damaged"),
    Fault("RGB mask", _rgb_mask, r"annotation is mode 'RGB', expected a palette PNG"),
    Fault("broken Labelme JSON", _broken_json, r"not valid JSON", annotation="labelme"),
    Fault(
        "damaged embedded image",
        _embedded_damaged,
        r"imageData cannot be decoded: .*truncated",
        annotation="labelme",
        problems=2,  # the damaged data, then no image file to fall back on
    ),
    Fault(
        "grades.csv in UTF-16",
        _grades_utf16,
        r"not UTF-8 text \(byte 0xff at offset 0\); save it as UTF-8",
        kept=IMAGES,
    ),
)


def plant(root: Path, fault: Fault, pristine: Path | None = None) -> Path:
    """The dataset under ``root`` with ``fault`` in it; return the file at fault.

    Args:
        root: Where the dataset goes.
        fault: What to break.
        pristine: A :func:`tjdr_dataset` to copy instead of generating one.
    """
    if pristine is None:
        tjdr_dataset(root)
    else:
        shutil.copytree(pristine, root, ignore=shutil.ignore_patterns(".cache"))
    return fault.plant(root / "train")


def sixteen_bit(path: Path) -> np.ndarray:
    """Rewrite an RGB image as 16-bit greyscale; return the 8-bit grey it must read back as."""
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.uint16)
    Image.fromarray(grey * 257).save(path)  # 257 * v spans 0..65535 exactly
    return grey.astype(np.uint8)


# ------------------------------------------------------------------------------ RetinaMNIST
def retinamnist_file(root: Path) -> Path:
    """medmnist's 28 px RetinaMNIST file (10/5/5 images) under ``root``."""
    write_retinamnist(root, sizes=(28,), n_train=10, n_val=5, n_test=5, seed=0)
    return root / "retinamnist.npz"


def rewrite_npz(path: Path, **arrays: np.ndarray) -> None:
    """Replace some arrays of an npz file, keeping the others."""
    with np.load(path) as data:
        content = {key: data[key] for key in data.files}
    np.savez(path, **(content | arrays))


def _fractional(path: Path) -> None:
    with np.load(path) as data:
        labels = data["train_labels"].astype(np.float64)
    labels[3, 0] = 2.5
    rewrite_npz(path, train_labels=labels)


def _out_of_range(path: Path) -> None:
    with np.load(path) as data:
        labels = data["train_labels"].copy()
    labels[1, 0] = 7
    rewrite_npz(path, train_labels=labels)


def _npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3))


#: (name, plant, reason, train images a lenient reader keeps; None: nothing can be read).
NPZ_FAULTS: tuple[tuple[str, Callable[[Path], None], str, int | None], ...] = (
    ("fractional label", _fractional, r"train_labels row 3: label 2\.5 is not a whole number", 9),
    ("label outside 0-4", _out_of_range, r"train_labels row 1: label 7 is outside 0-4", 9),
    (
        "text file",
        lambda path: path.write_text("image,grade\n"),
        r"not an npz file .*starts with b'image,grade",
        None,
    ),
    ("single .npy array", _npy, r"a single \.npy array, not an npz archive", None),
)
