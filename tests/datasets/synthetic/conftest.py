import numpy as np
import pytest
from shapely.geometry import Point

from multitask_dr.datasets.synthetic.grade import Lesion
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.writers import write_tjdr

FOV = (50.0, 50.0, 45.0)


def blob(kind, x, y, r=2.0):
    return Lesion(kind, Point(x, y).buffer(r))


def he_in(quadrants, fov=FOV, offset=15.0):
    """One HE centred in each named quadrant: 0 UL, 1 UR, 2 LL, 3 LR."""
    cx, cy = fov[:2]
    centres = {0: (-1, -1), 1: (1, -1), 2: (-1, 1), 3: (1, 1)}
    return [
        blob("HE", cx + sx * offset, cy + sy * offset) for sx, sy in (centres[q] for q in quadrants)
    ]


def pixel_centre_distance(shape, fov):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return np.hypot(xs - fov[0], ys - fov[1])


@pytest.fixture(scope="module")
def phantoms():
    """Three eyes of each grade at 96 px (rendered once for the module)."""
    return {
        g: [render_phantom(96, g, np.random.default_rng(10 * g + k)) for k in range(3)]
        for g in range(5)
    }


@pytest.fixture(scope="module")
def tjdr_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tjdr")
    # Mostly severe eyes, so every lesion type and overlaps occur in few images.
    return write_tjdr(root, n_train=4, n_test=2, size=96, seed=3, grade_probs=(1, 1, 2, 3, 3))
