from collections import Counter

import numpy as np
import pytest

from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import (
    DEFAULT_GRADE_PROBS,
    image_rng,
    sample_grade,
)
from multitask_dr.datasets.synthetic.writers import write_tjdr


def test_grade_two_decider_is_clear_and_varies():
    deciders = Counter()
    for seed in range(40):
        eye = render_phantom(64, 2, np.random.default_rng(seed))
        counts = Counter(lesion.kind for lesion in eye.lesions)
        others = [counts[k] for k in ("HE", "EX", "SE") if k != eye.deciding_lesion]
        # Clearly dominant: alone, or ahead by at least 2 instances.
        assert max(others) == 0 or counts[eye.deciding_lesion] >= max(others) + 2, counts
        deciders[eye.deciding_lesion] += 1
    assert set(deciders) == {"HE", "EX", "SE"}


def test_grade_distribution_follows_grade_probs():
    n = 4000
    for probs in (DEFAULT_GRADE_PROBS, (0.1, 0.1, 0.1, 0.2, 0.5)):
        grades = [sample_grade(image_rng(0, "retinamnist", "train", i), probs) for i in range(n)]
        freq = np.bincount(grades, minlength=5) / n
        assert np.abs(freq - np.array(probs) / sum(probs)).max() < 0.03, freq


def test_grade_probs_are_validated(tmp_path):
    for bad in ((1, 2, 3), (0.5, 0.5, -0.1, 0, 0), (0, 0, 0, 0, 0)):
        with pytest.raises(ValueError, match="grade_probs"):
            write_tjdr(tmp_path, n_train=1, n_test=0, size=64, grade_probs=bad)


def test_image_rng_streams_differ():
    draws = {
        (d, s, i): image_rng(0, d, s, i).integers(0, 2**62)
        for d in ("tjdr", "retinamnist")
        for s in ("train", "test")
        for i in range(3)
    }
    assert len(set(draws.values())) == len(draws)
    assert image_rng(0, "tjdr", "train", 1).integers(0, 2**62) == draws[("tjdr", "train", 1)]
