import json
from pathlib import Path

import numpy as np
from PIL import Image

from multitask_dr.lesions import (
    RELEASE_PALETTE,
)


def palette_png(path: Path, index_mask: np.ndarray) -> None:
    image = Image.fromarray(index_mask.astype(np.uint8), mode="P")
    image.putpalette([v for rgb in RELEASE_PALETTE for v in rgb] + [0] * (768 - 15))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def rgb_png(path: Path, size=(40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 120, np.uint8)).save(path)


def make_release(root: Path, n: int = 3) -> None:
    for i in range(1, n + 1):
        rgb_png(root / "train" / "image" / f"{i:03d}.png")
        index = np.zeros((40, 40), np.uint8)
        index[5:10, 5:10] = i % 5
        palette_png(root / "train" / "annotation" / f"{i:03d}.png", index)


def make_labelme(root: Path) -> None:
    """One 40x40 image with a Labelme square [10, 20]^2 (HE) beside it, and no PNG."""
    rgb_png(root / "train" / "image" / "001.png")
    shape = {"label": "HE", "points": [[10, 10], [20, 10], [20, 20], [10, 20]]}
    document = {"version": "5.7.0", "shapes": [shape | {"shape_type": "polygon"}]}
    document |= {"imagePath": "001.png", "imageHeight": 40, "imageWidth": 40}
    (root / "train" / "image" / "001.json").write_text(json.dumps(document))
