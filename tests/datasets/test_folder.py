"""Restoring predicted maps to a photograph's own geometry."""

import numpy as np

from multitask_dr.datasets.folder import restore_geometry
from multitask_dr.datasets.preprocess import crop_and_resize


def test_restore_geometry_inverts_crop_pad_and_resize():
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    image[10:50, 30:70] = 200  # a bright square "retina" off centre in a wide photograph
    image[20:30, 40:50] = 50
    small, _ = crop_and_resize(image, None, 20, crop_fov=True)
    maps = (small.max(axis=2, keepdims=True) > 100).astype(np.float32).transpose(2, 0, 1)
    box = (10, 30, 50, 70)
    restored = restore_geometry(maps, (60, 100), box)[0] > 0.5
    truth = image.max(axis=2) > 100
    assert restored.shape == truth.shape
    assert (restored != truth).mean() < 0.02  # only resampling at the edges differs
