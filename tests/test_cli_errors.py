"""The command line's error paths: one line naming the file, non-zero exit, no traceback.

Tracebacks only with ``--debug`` or ``MULTITASK_DR_DEBUG=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from multitask_dr.cli import main
from multitask_dr.errors import CheckpointError
from tests.cli_config import tiny_joint_config
from tests.fitted_run import run_cli as run_fitted_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(synthetic_root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_joint_config(synthetic_root, tmp_path, loggers=[])))
    return path


def lightning_like(path: Path) -> Path:
    torch.save({"state_dict": {}, "pytorch-lightning_version": lightning.__version__}, path)
    return path


def truncated_checkpoint(path: Path) -> Path:
    lightning_like(path)
    path.write_bytes(path.read_bytes()[:200])
    return path


def weights_only(path: Path) -> Path:
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    return path


BAD_CHECKPOINTS = {
    "missing": (lambda p: p, r"checkpoint not found"),
    "folder": (lambda p: (p.mkdir(), p)[1], r"is a folder, not a checkpoint file"),
    "empty": (lambda p: (p.write_bytes(b""), p)[1], r"empty file \(0 bytes\)"),
    "text": (lambda p: (p.write_text("hello"), p)[1], r"not a PyTorch checkpoint"),
    "truncated": (truncated_checkpoint, r"truncated or damaged checkpoint"),
    "not Lightning": (weights_only, r"a PyTorch file but not a Lightning checkpoint"),
}


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_bad_checkpoint_is_one_line_naming_it(kind, config, tmp_path, capsys):
    make, reason = BAD_CHECKPOINTS[kind]
    path = make(tmp_path / "model.ckpt")
    assert main(["validate", "--config", str(config), "--ckpt_path", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"multitask-dr: error: {path}: ") and err.count("\n") == 1, err
    assert re.search(reason, err) and "Traceback" not in err


def test_debug_switch_and_variable_show_the_exception(config, tmp_path, monkeypatch):
    args = ["test", "--config", str(config), "--ckpt_path", str(tmp_path / "absent.ckpt")]
    with pytest.raises(CheckpointError, match="absent.ckpt: checkpoint not found"):
        main([*args, "--debug"])
    monkeypatch.setenv("MULTITASK_DR_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(args)


def test_predict_without_checkpoint_refuses(config, tmp_path, capsys):
    args = ["predict", "--config", str(config), "--data.predict_dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("multitask-dr: error: predict needs trained weights: pass --ckpt_path")
    assert not (tmp_path / "predictions").exists()


def test_value_a_class_rejects_is_one_line(config, capsys):
    bad = ["--data.init_args.segmentation.init_args.patch_size", "999"]
    assert main(["fit", "--config", str(config), *bad]) == 2
    err = capsys.readouterr().err
    assert err == (
        "multitask-dr: error: invalid configuration: patch_size 999 exceeds image_size 64\n"
    )


def test_check_data_starts_without_lightning_or_wandb(synthetic_root):
    code = (
        "import sys; from multitask_dr.cli import main; "
        f"status = main(['check-data', {str(synthetic_root / 'tjdr')!r}, '--annotation', 'png']); "
        "heavy = [m for m in ('lightning', 'wandb', 'timm') if m in sys.modules]; "
        "print('heavy:', heavy, file=sys.stderr); sys.exit(status)"
    )
    env = os.environ | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stderr


def test_closed_pipe_ends_quietly(synthetic_root):
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited
    env = os.environ | {"PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "multitask_dr", "check-data", str(synthetic_root / "tjdr")]
    done = subprocess.run(args, stdout=write, stderr=subprocess.PIPE, text=True, env=env)
    os.close(write)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_missing_data_root_is_one_clear_line(fitted, tmp_path, capsys):
    config, _ = fitted
    absent = tmp_path / "nowhere" / "tjdr"
    args = ["validate", "--config", str(config), "--trainer.logger", "false"]
    args += ["--data.init_args.segmentation.init_args.root", str(absent)]
    assert run_fitted_cli(args) == 2
    err = capsys.readouterr().err
    assert f"multitask-dr: error: TJDR root {absent} does not exist" in err
    assert "Traceback" not in err


def test_flat_network_key_names_its_new_home(tmp_path, capsys):
    demo = str(Path(__file__).parents[1] / "configs" / "demo.yaml")
    assert main(["fit", "--config", demo, "--model.conditioning", "stats"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "multitask-dr: error: --model.conditioning is now --model.network.conditioning"
    ]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"model": {"encoder": "resnet18", "lr": 0.001}}))
    assert main(["fit", "--config", str(old)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"multitask-dr: error: {old}: model: encoder belong under model.network")
