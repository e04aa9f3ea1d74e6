"""Resuming ``fit`` reproduces the straight run, and a killed ``fit`` says so and resumes.

A straight 3-epoch run is the reference. Stopped after epoch 0 (as a job out of time) or
killed by SIGTERM/SIGINT in epoch 1, then resumed from ``last.ckpt`` to epoch 3, a run must
log the same training loss at every step and the same validation metrics at every epoch,
byte for byte: data order and augmentation (TJDR and RetinaMNIST, both augmented) and the
model's own randomness included.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from multitask_dr.cli import main
from tests.cli_config import tiny_joint_config

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3

#: Per run: {(epoch, step, key): value} of every logged number, as the CSV logger wrote it.
Logged = dict[tuple[str, str, str], str]


def write_config(root: Path, out: Path, callbacks: list[dict] | None = None) -> Path:
    csv_logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(out), "name": "csv"},
    }
    config = tiny_joint_config(
        root, out, loggers=[csv_logger], callbacks=callbacks, trainer={"max_epochs": EPOCHS}
    )
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def logged(out: Path) -> list[Logged]:
    """Every value each run (CSV version) logged, keyed by epoch, step and name."""
    runs = []
    for path in sorted((out / "csv").glob("version_*/metrics.csv")):
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        runs.append(
            {
                (row["epoch"], row["step"], key): value
                for row in rows
                for key, value in row.items()
                if value and key not in ("epoch", "step")
            }
        )
    return runs


def fit(config: Path, *extra: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(["fit", "--config", str(config), *extra])


@pytest.fixture(scope="module")
def straight(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    out = tmp_path_factory.mktemp("straight") / "out"
    assert fit(write_config(synthetic_root, out)) == 0
    (run,) = logged(out)
    assert {key[0] for key in run} == {str(e) for e in range(EPOCHS)}
    return run


def assert_replays(runs: list[Logged], straight: Logged) -> None:
    """Each part of an interrupted run logged what the straight run logged at that point."""
    seen: Logged = {}
    for run in runs:
        for key, value in run.items():
            assert straight.get(key) == value, key
        seen |= run
    assert seen == straight  # and together they logged all of it


def last_epoch(out: Path) -> int:
    return torch.load(out / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]


def test_stopped_after_one_epoch_and_resumed_equals_the_straight_run(
    straight, synthetic_root, tmp_path
):
    out = tmp_path / "out"
    stop = {"class_path": "tests.resume_helpers.StopAfterEpoch", "init_args": {"epoch": 0}}
    assert fit(write_config(synthetic_root, out, [stop])) == 0
    assert last_epoch(out) == 0
    resume = write_config(synthetic_root, out)
    assert fit(resume, "--ckpt_path", str(out / "ckpt" / "last.ckpt")) == 0
    runs = logged(out)
    assert len(runs) == 2 and {key[0] for key in runs[0]} == {"0"}
    assert_replays(runs, straight)


def killed_fit(root: Path, out: Path, signum: int) -> subprocess.CompletedProcess[str]:
    """A real ``fit`` process, sent ``signum`` during the first batch of epoch 1."""
    ready = out.parent / "ready"
    wait = {
        "class_path": "tests.resume_helpers.WaitForSignal",
        "init_args": {"epoch": 1, "ready": str(ready)},
    }
    config = write_config(root, out, [wait])
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "multitask_dr", "fit", "--config", str(config)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    while not ready.exists():  # a wait, not a timed assertion: the run holds until signalled
        if process.poll() is not None:
            pytest.fail(f"fit ended before epoch 1: {process.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(command, process.returncode, "", stderr)


def test_sigterm_exits_143_and_resumes_to_the_straight_result(straight, synthetic_root, tmp_path):
    out = tmp_path / "out"
    done = killed_fit(synthetic_root, out, signal.SIGTERM)
    last = out / "ckpt" / "last.ckpt"
    assert done.returncode == 143, done.stderr
    assert (
        f"multitask-dr: fit stopped by SIGTERM in epoch 1; resume from the last finished epoch "
        f"with --ckpt_path {last}\n" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert last_epoch(out) == 0  # the half-done epoch 1 is not saved over it
    assert fit(write_config(synthetic_root, out), "--ckpt_path", str(last)) == 0
    runs = logged(out)
    assert len(runs) == 2
    assert_replays(runs, straight)


def test_sigint_exits_130_leaving_the_last_epoch_checkpoint(synthetic_root, tmp_path):
    out = tmp_path / "out"
    done = killed_fit(synthetic_root, out, signal.SIGINT)
    assert done.returncode == 130, done.stderr
    assert "multitask-dr: fit stopped by SIGINT in epoch 1; resume" in done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert last_epoch(out) == 0
