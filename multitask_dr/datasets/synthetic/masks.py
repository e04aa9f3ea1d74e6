"""A phantom lesion as its Labelme shape, and the masks that shape gives under the default rule.

Image, palette PNG and Labelme JSON agree pixel for pixel because all three come from these
masks (see :mod:`multitask_dr.datasets.synthetic`).
"""

from __future__ import annotations

import numpy as np

from multitask_dr.datasets.labelme_rule import LabelmeDrawing, rasterize_labelme
from multitask_dr.datasets.labelme_shapes import labelme_shape_dict
from multitask_dr.datasets.release_mask import channels_to_release_mask
from multitask_dr.datasets.synthetic.grade import Lesion, Phantom
from multitask_dr.lesions import LESIONS


def labelme_shape(lesion: Lesion) -> dict[str, object]:
    """One Labelme 5.x shape: a circle for circle lesions (MAs), a polygon otherwise."""
    if lesion.circle is not None:
        return labelme_shape_dict(
            lesion.kind, [list(lesion.circle[0]), list(lesion.circle[1])], "circle"
        )
    # Labelme stores an open ring: drop shapely's closing point.
    points = [[float(x), float(y)] for x, y in lesion.geometry.exterior.coords[:-1]]
    return labelme_shape_dict(lesion.kind, points, "polygon")


def _drawing(lesion: Lesion) -> LabelmeDrawing:
    """The lesion as the Labelme shape written to the JSON, ready to draw."""
    shape = labelme_shape(lesion)
    points = np.asarray(shape["points"], dtype=np.float64)
    return LabelmeDrawing(LESIONS.index(lesion.kind), str(shape["shape_type"]), points)


def lesion_mask(lesion: Lesion, height: int, width: int) -> np.ndarray:
    """One lesion's pixels: its Labelme shape under the default (``labelme``) rule.

    Returns:
        ``(H, W)`` bool.
    """
    drawing = _drawing(lesion)._replace(channel=0)
    return rasterize_labelme([drawing], height, width, 1)[..., 0] == 1


def release_mask(phantom: Phantom) -> np.ndarray:
    """TJDR release index mask (0 bg, 1 EX, 2 HE, 3 MA, 4 SE) of :func:`lesion_masks`.

    Where lesions overlap, :data:`~multitask_dr.lesions.RELEASE_PRIORITY` decides, as it does
    for every one-index-per-pixel file the project writes.

    Returns:
        ``(H, W)`` uint8.
    """
    return channels_to_release_mask(lesion_masks(phantom))


def lesion_masks(phantom: Phantom) -> np.ndarray:
    """Per-lesion binary masks in :data:`~multitask_dr.lesions.LESIONS` order (overlaps kept).

    Each is the union of that lesion type's Labelme shapes under the default rule, i.e. what
    reading the phantom's Labelme JSON gives.

    Returns:
        ``(H, W, 4)`` uint8 with values 0/1.
    """
    height, width = phantom.image.shape[:2]
    drawings = [_drawing(lesion) for lesion in phantom.lesions]
    return rasterize_labelme(drawings, height, width, len(LESIONS))
