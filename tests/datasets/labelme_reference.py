"""Labelme's converter, written out the way Labelme draws: the tests' reference.

This mirrors Labelme's ``shape_to_mask`` and ``shapes_to_label`` (labelme/_utils/shape.py) and
the TJDR authors' copy of them: one fresh ``uint8`` canvas per shape, PIL ``ImageDraw`` with
``outline=1, fill=1``, Python float tuples as coordinates. It shares no code with
``multitask_dr.datasets.rasterize``, so a mistake there cannot hide here.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from multitask_dr.lesions import IGNORE_INDEX, LESIONS


def shape_to_mask(
    height: int,
    width: int,
    points: list[list[float]],
    shape_type: str | None,
    line_width: int = 10,
    point_size: int = 5,
) -> np.ndarray:
    """One shape's ``(H, W)`` bool mask, as Labelme's ``shape_to_mask``."""
    mask = Image.fromarray(np.zeros((height, width), dtype=np.uint8))
    draw = ImageDraw.Draw(mask)
    xy = [tuple(point) for point in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif shape_type == "line":
        draw.line(xy=xy, fill=1, width=line_width)
    elif shape_type == "linestrip":
        draw.line(xy=xy, fill=1, width=line_width, joint="curve")
    elif shape_type == "point":
        (cx, cy), r = xy[0], point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif shape_type in (None, "polygon", "oriented_rectangle"):
        draw.polygon(xy=xy, outline=1, fill=1)
    else:
        raise ValueError(shape_type)
    return np.array(mask, dtype=bool)


def patch_to_mask(height: int, width: int, shape: dict[str, Any]) -> np.ndarray:
    """A ``mask`` shape's ``(H, W)`` bool mask, as Labelme's ``shapes_to_label`` pastes it."""
    with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as image:
        patch = np.asarray(image).astype(bool)
    mask = np.zeros((height, width), dtype=bool)
    x1, y1 = np.asarray(shape["points"][0]).round().astype(int)
    y_start, y_stop = max(y1, 0), min(y1 + patch.shape[0], height)
    x_start, x_stop = max(x1, 0), min(x1 + patch.shape[1], width)
    if y_start < y_stop and x_start < x_stop:
        mask[y_start:y_stop, x_start:x_stop] = patch[
            y_start - y1 : y_stop - y1, x_start - x1 : x_stop - x1
        ]
    return mask


def one_shape(height: int, width: int, shape: dict[str, Any]) -> np.ndarray:
    """The mask of one raw Labelme shape dict, whatever its type."""
    if shape.get("shape_type") == "mask":
        return patch_to_mask(height, width, shape)
    return shape_to_mask(height, width, shape["points"], shape.get("shape_type"))


def file_masks(
    document: dict[str, Any], lesion_of: Mapping[str, str], height: int, width: int
) -> np.ndarray:
    """``(H, W, 4)`` masks of a Labelme document: each lesion's shapes ORed, ignore on top."""
    out = np.zeros((height, width, len(LESIONS)), dtype=np.uint8)
    ignore = np.zeros((height, width), dtype=bool)
    for shape in document["shapes"]:
        mask = one_shape(height, width, shape)
        if shape["label"] == "__ignore__":
            ignore |= mask
        else:
            out[..., LESIONS.index(lesion_of[shape["label"]])] |= mask
    out[ignore] = IGNORE_INDEX
    return out
