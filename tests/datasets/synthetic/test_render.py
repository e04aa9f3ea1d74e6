from collections import Counter

import cv2
import numpy as np
import pytest
from shapely.geometry import Point

from multitask_dr.datasets.synthetic.grade import Phantom, grade_from_lesions
from multitask_dr.datasets.synthetic.masks import lesion_mask, lesion_masks
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import (
    MIN_MA_RADIUS,
)
from multitask_dr.lesions import LESIONS
from tests.datasets.synthetic.conftest import pixel_centre_distance


def test_every_phantom_has_its_requested_grade(phantoms):
    for grade, eyes in phantoms.items():
        for eye in eyes:
            assert isinstance(eye, Phantom)
            assert eye.grade == grade
            assert grade_from_lesions(eye.lesions, eye.fov) == (grade, eye.deciding_lesion)
            counts = Counter(lesion.kind for lesion in eye.lesions)
            if grade == 0:
                assert not eye.lesions and eye.deciding_lesion is None
            if grade == 1:
                assert set(counts) == {"MA"}
            if grade == 2:
                # The decider wins clearly, not by a tie-break.
                others = [counts[k] for k in ("HE", "EX", "SE") if k != eye.deciding_lesion]
                assert counts[eye.deciding_lesion] > max(others)


def test_image_looks_like_a_fundus(phantoms):
    for eye in (e for eyes in phantoms.values() for e in eyes):
        image = eye.image
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
            assert corner.tolist() == [0, 0, 0]
        dist = pixel_centre_distance(image.shape, eye.fov)
        assert not image[dist >= eye.fov[2]].any(), "pixels outside the FOV must be exactly 0"
        # Bright enough everywhere inside that FOV detection (threshold 12) finds the circle.
        assert image[dist < eye.fov[2] - 1].max(axis=1).min() > 12
        retina = image[dist < 0.8 * eye.fov[2]].reshape(-1, 3).mean(axis=0)
        assert retina[0] > retina[1] > retina[2], "retina should be orange-red"
        # The optic disc is the brightest structure.
        dx, dy, dr = eye.optic_disc
        disc = image[pixel_centre_distance(image.shape, (dx, dy)) < 0.5 * dr].mean()
        assert disc > image[dist < eye.fov[2]].mean() + 40


def test_lesions_lie_inside_the_fov_and_off_the_disc(phantoms):
    for eye in (e for eyes in phantoms.values() for e in eyes):
        cx, cy, radius = eye.fov
        fov_disc = Point(cx, cy).buffer(radius, quad_segs=64)
        for lesion in eye.lesions:
            assert fov_disc.contains(lesion.geometry)
            assert not lesion.geometry.intersects(
                Point(*eye.optic_disc[:2]).buffer(eye.optic_disc[2])
            )
        dist = pixel_centre_distance(eye.image.shape, eye.fov)
        assert not lesion_masks(eye)[dist >= radius].any()


def test_microaneurysms_survive_at_64_px():
    for seed in range(5):
        eye = render_phantom(64, 1, np.random.default_rng(seed))
        mas = [lesion for lesion in eye.lesions if lesion.kind == "MA"]
        assert mas
        for lesion in mas:
            (cx, cy), (rx, _) = lesion.circle
            assert rx - cx >= MIN_MA_RADIUS - 1e-9
            assert lesion_mask(lesion, 64, 64).sum() >= 4


def test_lesions_are_painted_where_their_masks_are():
    eye = render_phantom(256, 4, np.random.default_rng(7))
    masks = lesion_masks(eye)
    any_lesion = masks.any(axis=2)
    ring = cv2.dilate(any_lesion.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ring &= ~cv2.dilate(any_lesion.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    background = eye.image[ring].astype(float).mean(axis=0)
    image = eye.image.astype(float)
    checked = 0
    for channel, kind in enumerate(LESIONS):
        only = masks[..., channel].astype(bool) & (masks.sum(axis=2) == 1)
        if only.sum() < 5:
            continue
        inside = image[only].mean(axis=0)
        if kind in ("MA", "HE"):  # dark red: much less green
            assert inside[1] < 0.75 * background[1], kind
        else:  # exudates are brighter, above all in green
            assert inside[1] > background[1] + 25, kind
        checked += 1
    assert checked >= 3


def test_render_rejects_bad_arguments():
    with pytest.raises(ValueError, match="grade"):
        render_phantom(64, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="size"):
        render_phantom(16, 0, np.random.default_rng(0))
