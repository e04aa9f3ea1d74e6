"""The real CLI end to end, in-process: fit, then test from the checkpoint."""

import csv
import warnings

import pytest
import yaml

from multitask_dr.cli import main
from tests.cli_config import tiny_joint_config, wandb_logger


def tiny_config(root, out):
    csv_logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(out), "name": "csv"},
    }
    return tiny_joint_config(
        root, out, loggers=[wandb_logger(out), csv_logger], trainer={"max_epochs": 2}
    )


@pytest.fixture
def wandb_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield
    import wandb

    wandb.finish()


def test_fit_then_test_writes_checkpoint_wandb_run_and_metrics(
    synthetic_root, tmp_path, wandb_offline, capsys
):
    out = tmp_path / "out"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(synthetic_root, out)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--config", str(config)]) == 0
        ckpt = out / "ckpt" / "best.ckpt"
        assert ckpt.exists()
        capsys.readouterr()
        summary = ["--summary", "true"]
        assert main(["test", "--config", str(config), "--ckpt_path", str(ckpt), *summary]) == 0
        printed = capsys.readouterr().out
        assert "What the model learned (test split):" in printed
        assert "mAUPR" in printed and "QWK" in printed
        assert f"checkpoint  {ckpt}" in printed and "offline-run-" in printed
        # A deep ensemble of the model with itself must score exactly as the model.
        ensemble = ["--model.ensemble_checkpoints", f"[{ckpt}]"]
        assert main(["test", "--config", str(config), "--ckpt_path", str(ckpt), *ensemble]) == 0

    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # fit and each test make a run
    saved = yaml.safe_load((runs[0] / "files" / "config.yaml").read_text())
    assert saved["model"]["conditioning"] == "stats"
    assert list(runs[0].glob("run-*.wandb"))

    rows = []
    for path in sorted((out / "csv").rglob("metrics.csv")):
        with path.open() as handle:
            rows += list(csv.DictReader(handle))
    logged = {k for row in rows for k, v in row.items() if v not in ("", None)}
    for key in (
        "train/loss",
        "val/score",
        "val/seg/aupr_mean",
        "val/grade/qwk",
        "test/seg/dice_MA",
        "test/grade/acc",
        "test/grade/auc",
    ):
        assert key in logged, key
    tests = [r for r in rows if r.get("test/grade/acc")]
    assert len(tests) == 2 and 0.0 <= float(tests[0]["test/grade/acc"]) <= 1.0
    for key in ("test/grade/acc", "test/grade/auc", "test/seg/aupr_mean"):
        assert float(tests[0][key]) == pytest.approx(float(tests[1][key]), abs=1e-6), key


def test_help_lists_the_configs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    assert "demo.yaml" in capsys.readouterr().out
