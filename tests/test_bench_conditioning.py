"""The conditioning benchmark, run for real on a few tiny phantoms (one epoch, tiny encoder)."""

import argparse
import json
import math
import warnings

import pytest

from multitask_dr.datasets.synthetic.writers import write_tjdr
from multitask_dr.lesions import LESIONS
from tests.scripts import load_script


def load_benchmark():
    return load_script("benchmarks/bench_conditioning.py")


@pytest.mark.parametrize("mode", ["none", "bottleneck_max"])
def test_run_then_remeasure_on_fresh_phantoms(tmp_path, mode):
    bench = load_benchmark()
    args = argparse.Namespace(
        size=64,
        n_train=12,
        n_test=10,
        batch=4,
        lr=2e-3,
        epochs=1,
        encoder="tu-test_resnet",
        grade_output="softmax",
        teacher_forcing=0.5,
        test_seed=1,
    )
    root = tmp_path / "phantoms"
    write_tjdr(root, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bench.run(mode, 0, root, args, tmp_path)
    assert 0.0 <= result["acc"] <= 1.0 and -1.0 <= result["qwk"] <= 1.0
    shares = [result["attribution"], result["attribution_necessary"]]
    shares += [result[f"attribution_{lesion}"] for lesion in LESIONS]
    assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in shares)
    if mode == "none":  # the grade never reads the maps, so no erasure can move it
        assert result["attribution"] == 0.0

    # The kept checkpoint is re-measured on test phantoms of another generator seed.
    deciders = bench.deciding_lesions(root, "test", args.size, args.n_test)
    args.json = tmp_path / "results.json"
    args.work = tmp_path
    args.json.write_text(json.dumps([result]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (fresh,) = bench.attribution_only(args)
    fresh_root = tmp_path / "phantoms_test1"
    fresh_deciders = bench.deciding_lesions(fresh_root, "test", args.size, args.n_test, seed=1)
    assert fresh_deciders != deciders  # another set of eyes, with its own deciding lesions
    assert 0.0 <= fresh["acc"] <= 1.0
    assert fresh["attribution"] == 0.0 if mode == "none" else 0.0 <= fresh["attribution"] <= 1.0
