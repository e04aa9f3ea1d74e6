"""The RetinaMNIST grading config and benchmark, run for real on tiny synthetic data."""

import argparse
import math
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from tests.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "retinamnist.yaml"


def load_benchmark():
    return load_script("benchmarks/bench_retinamnist.py")


def test_config_selects_on_validation_and_reads_the_official_file():
    runs = load_script("benchmarks/cli_runs.py")
    config = runs.load_configs([CONFIG])  # on configs/base.yaml, as the CLI reads it
    checkpoints = runs.model_checkpoints(config)
    monitored = [cb for cb in checkpoints if cb["init_args"].get("monitor")]
    assert len(monitored) == 1  # best, on a validation metric; the other one is last.ckpt
    assert monitored[0]["init_args"]["monitor"].startswith("val/grade/")
    assert [cb["init_args"]["filename"] for cb in checkpoints] == ["best", "last"]
    data = config["data"]["init_args"]
    assert config["data"]["class_path"].endswith("RetinaMNISTDataModule")
    assert data["root"] == "../shared/data/retinamnist" and data["size"] == 28
    assert not data.get("download", False)
    assert (
        config["model"]["network"]["conditioning"] == "none"
    )  # what lets training skip the decoder


def test_seed_config_routes_seed_logging_and_checkpoints(tmp_path):
    bench = load_benchmark()
    base = bench.load_configs([CONFIG])
    config = bench.seed_config(base, 7, tmp_path, ["model.lr=0.5", "data.init_args.size=64"])
    assert config["seed_everything"] == 7 and config["data"]["init_args"]["seed"] == 7
    assert config["model"]["lr"] == 0.5 and config["data"]["init_args"]["size"] == 64
    assert config["trainer"]["logger"]["class_path"].endswith("CSVLogger")
    runs = load_script("benchmarks/cli_runs.py")
    dirpaths = {cb["init_args"]["dirpath"] for cb in runs.model_checkpoints(config)}
    assert dirpaths == {str(tmp_path / "ckpt")}  # best and last, both out of checkpoints/
    assert base["model"]["lr"] != 0.5  # the loaded config is left alone


def test_benchmark_fits_selects_validates_and_tests_through_the_cli(
    synthetic_root, tmp_path, monkeypatch
):
    bench = load_benchmark()
    base = bench.load_configs([CONFIG])
    monkeypatch.chdir(REPO)
    args = argparse.Namespace(
        val_only=False,
        members=1,
        reuse=False,
        set=[
            f"data.init_args.root={synthetic_root / 'retinamnist'}",
            "data.init_args.image_size=32",
            "data.init_args.batch_size=8",
            "model.network.encoder=tu-test_resnet",
            "model.network.decoder_channels=[8, 8, 8, 8, 8]",
            "model.tta=dihedral",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bench.run_seed(base, 0, args, tmp_path)
    assert result["members"] == [0] and result["best_epoch"][0] in (0, 1)
    assert len(result["val_curve"]) == 2  # one validation per epoch, sanity check excluded
    for stage in ("val", "test"):
        for name in ("acc", "auc", "qwk"):
            value = result[stage][name]
            assert not math.isnan(value), (stage, name)
            assert -1.0 <= value <= 1.0
    # The selected epoch's validation numbers are what re-validating the checkpoint gives.
    monitor = bench.checkpoint_callback(base)["init_args"]["monitor"].split("/")[-1]
    best = max(r[monitor] for r in result["val_curve"])
    assert result["val"][monitor] == pytest.approx(best, abs=1e-5)
    ckpt = torch.load(tmp_path / "seed0" / "ckpt" / "best.ckpt", weights_only=False)
    assert ckpt["hyper_parameters"]["tta"] == "dihedral"
    assert ckpt["hyper_parameters"]["network"]["encoder"] == "tu-test_resnet"

    # An ensemble of 2 (seeds 0 and 1) reuses the model fitted above as its first member.
    fitted = (tmp_path / "seed0" / "ckpt" / "best.ckpt").stat().st_mtime_ns
    args.members, args.reuse = 2, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair = bench.run_seed(base, 0, args, tmp_path)
    assert (tmp_path / "seed0" / "ckpt" / "best.ckpt").stat().st_mtime_ns == fitted
    assert pair["members"] == [0, 1] and (tmp_path / "seed1" / "ckpt" / "best.ckpt").exists()
    assert pair["fit_s"] > result["fit_s"]  # the sum of both members' fits
    for stage in ("val", "test"):
        assert all(not math.isnan(pair[stage][k]) for k in ("acc", "auc", "qwk"))
    # A model fitted under other settings is not reused: one line, no traceback.
    args.set = [*args.set, "model.lr=0.5"]
    with pytest.raises(SystemExit, match="seed0.yaml was written with other settings"):
        bench.run_seed(base, 0, args, tmp_path)


def test_overlays_merge_like_the_cli(tmp_path):
    runs = load_script("benchmarks/cli_runs.py")
    monitor = {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"}
    ema = {"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging"}
    data = {"class_path": "multitask_dr.datamodules.RetinaMNISTDataModule"}
    base = {
        "model": {"lr": 1.0, "network": {"encoder": "a"}},
        "trainer": {"callbacks": [monitor, ema]},
    }
    overlay = {"model": {"network": {"encoder": "b"}}, "trainer": {"callbacks": [ema]}}
    paths = [tmp_path / "base.yaml", tmp_path / "overlay.yaml"]
    for path, config in zip(paths, (base | {"data": data}, overlay), strict=True):
        path.write_text(yaml.safe_dump(config))
    merged = runs.load_configs(paths)
    # Mappings merge key by key, lists are replaced whole.
    merged_callbacks = [cb["class_path"] for cb in merged["trainer"]["callbacks"]]
    assert (merged["model"]["lr"], merged["model"]["network"]["encoder"]) == (1.0, "b")
    assert merged_callbacks == [ema["class_path"]]
    assert (
        yaml.safe_load(paths[0].read_text())["model"]["network"]["encoder"] == "a"
    )  # base unchanged
