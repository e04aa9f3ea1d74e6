"""DDP on 2 CPU processes (gloo): ``fit`` runs, and its validation metrics equal one process's.

The DDP ``fit`` runs as the user would start it (``python -m multitask_dr fit ...
--trainer.strategy ddp``; Lightning re-launches the same command for rank 1). Its end-of-epoch
validation metrics are then compared with a single-process ``validate`` of the checkpoint it
saved right after that validation: same weights, same images. For equality:

- the validation sets divide evenly over 2 processes (4 TJDR + 20 RetinaMNIST images), so
  DistributedSampler pads nothing (padding repeats images, which then count twice);
- TJDR is evaluated one image per batch: the Dice part of ``val/seg_loss`` is computed over a
  whole batch, so that one value depends on how images are grouped into batches, and DDP deals
  them out differently (rank 0 gets images 0 and 2). Every metric is batch-independent.

It also checks that :class:`~multitask_dr.callbacks.WandbMedia`'s collective steps work under
DDP: rank zero's per-image table holds every process's images.
"""

import csv
import json
import math
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

from multitask_dr.cli import main
from tests.cli_config import tiny_joint_config, wandb_logger

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(root: Path, out: Path) -> dict:
    csv_logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(out), "name": "csv", "version": "ddp"},
    }
    media = {
        "class_path": "multitask_dr.callbacks.WandbMedia",
        "init_args": {"num_images": 1, "figures": False, "lesion_effects": False},
    }
    base = tiny_joint_config(
        root,
        out,
        loggers=[csv_logger, wandb_logger(out)],
        callbacks=[media],
        trainer={"num_sanity_val_steps": 0},
        segmentation={"eval_batch_size": 1},
    )
    del base["trainer"]["limit_val_batches"]  # validate every image: compared with one process
    return base


def val_metrics(path: Path) -> dict[str, float]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return {k: float(v) for row in rows for k, v in row.items() if k.startswith("val/") and v}


def test_ddp_fit_on_two_cpu_processes_matches_one_process(synthetic_root, tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config(synthetic_root, out)))
    env = os.environ | {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WANDB_MODE": "offline",
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    command = [sys.executable, "-m", "multitask_dr", "fit", "--config", str(path)]
    command += ["--trainer.strategy", "ddp", "--trainer.devices", "2"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in done.stdout + done.stderr  # two processes really ran
    ddp = val_metrics(out / "csv" / "ddp" / "metrics.csv")

    one = config(synthetic_root, out)
    one["trainer"]["logger"] = one["trainer"]["logger"][0]
    one["trainer"]["logger"]["init_args"]["version"] = "single"
    one["trainer"]["callbacks"] = []
    single_path = tmp_path / "single.yaml"
    single_path.write_text(yaml.safe_dump(one))
    args = [
        "validate",
        "--config",
        str(single_path),
        "--ckpt_path",
        str(out / "ckpt" / "best.ckpt"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    single = val_metrics(out / "csv" / "single" / "metrics.csv")

    assert set(ddp) == set(single) and "val/seg/aupr_mean" in ddp and "val/grade/qwk" in ddp
    for key, value in single.items():
        if math.isnan(value):
            assert math.isnan(ddp[key]), key
        else:
            assert math.isclose(ddp[key], value, rel_tol=1e-5, abs_tol=1e-6), (key, ddp[key], value)

    # Rank zero's W&B table gathered both processes' images: 4 TJDR + 20 RetinaMNIST.
    (table,) = (out / "wandb").glob("offline-run-*/files/media/table/val/images_*.table.json")
    data = json.loads(table.read_text())
    names = [row[data["columns"].index("name")] for row in data["data"]]
    assert len(names) == len(set(names)) == 24
