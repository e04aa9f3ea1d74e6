"""The real CLI end to end, in-process: fit, then test from the checkpoint."""

import csv
import warnings
from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main
from tests.cli_config import tiny_joint_config, wandb_logger

SWEEP = Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "joint.yaml"


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
    assert saved["model"]["network"]["conditioning"] == "stats"
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


def test_top_level_help_lists_configs_and_extra_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("demo.yaml", "gpu/multinode.yaml", "synth", "check-data"):
        assert name in text
    assert "sweeps/" not in text


def test_sweep_parameters_are_options_of_fit(capsys):
    sweep = yaml.safe_load(SWEEP.read_text())
    command = sweep["command"]
    configs = [command[i + 1] for i, part in enumerate(command) if part == "--config"]
    args = ["fit"] + [a for c in configs for a in ("--config", str(SWEEP.parents[2] / c))]
    expected = {}
    for name, spec in sweep["parameters"].items():
        value = spec["values"][-1] if "values" in spec else spec["min"]
        args.append(f"--{name}={value}")  # how W&B's ${args} writes them
        expected[name] = value
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    for name, value in expected.items():
        node = printed
        for part in name.split("."):
            node = node[part]
        assert node == value, name


def test_evaluation_settings_come_from_the_command_not_the_checkpoint(
    fitted, synthetic_root, tmp_path, monkeypatch
):
    import torch

    from multitask_dr.lightning_cli import MultiTaskCLI
    from tests.fitted_run import run_cli

    config, out = fitted
    ckpt = out / "ckpt" / "best.ckpt"
    folder = tmp_path / "photos"
    folder.mkdir()
    image = sorted((synthetic_root / "tjdr" / "test" / "image").glob("*.png"))[0]
    (folder / "a.png").write_bytes(image.read_bytes())
    built = {}
    original = MultiTaskCLI.after_instantiate_classes

    def record_model(cli):
        built.update(cli.model.hparams)
        original(cli)

    monkeypatch.setattr(MultiTaskCLI, "after_instantiate_classes", record_model)
    args = ["predict", "--config", str(config), "--ckpt_path", str(ckpt)]
    args += ["--data.predict_dir", str(folder), "--prediction.output_dir", str(tmp_path / "p")]
    args += ["--trainer.logger", "false", "--model.lesion_tta", "flips", "--model.tta", "dihedral"]
    args += ["--model.eval_window", "32", "--model.ensemble_checkpoints", f"[{ckpt}]"]
    assert run_cli(args) == 0
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert trained["lesion_tta"] == "none" and trained["ensemble_checkpoints"] is None
    # How to evaluate is the command's choice; what the network is, the checkpoint's.
    assert built["lesion_tta"] == "flips" and built["tta"] == "dihedral"
    assert built["eval_window"] == 32 and built["ensemble_checkpoints"] == [str(ckpt)]
    assert built["network"] == trained["network"]
