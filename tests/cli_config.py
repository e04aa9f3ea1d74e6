"""The tiny joint-model CLI config the end-to-end tests build on (each adds what it checks).

The CLI reads ``configs/base.yaml`` under it: its checkpoint pair is kept (pointed at
``out/ckpt``), its LR monitor and W&B media are off unless a test lists them in ``callbacks``.
"""

from pathlib import Path
from typing import Any

TINY_NETWORK = {"encoder": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}
TINY_MODEL = {"network": TINY_NETWORK}


def wandb_logger(out: Path) -> dict[str, Any]:
    """Offline-capable W&B logger writing under ``out/wandb``."""
    return {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {"project": "multitask-dr-tests", "save_dir": str(out)},
    }


def tiny_joint_config(
    root: Path,
    out: Path,
    *,
    conditioning: str = "stats",
    loggers: list[dict[str, Any]] | None = None,
    callbacks: list[dict[str, Any]] | None = None,
    trainer: dict[str, Any] | None = None,
    segmentation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Joint TJDR (64 px) + RetinaMNIST (28 -> 32 px) with a tiny encoder, on ``root``'s data.

    Args:
        root: The ``synthetic_root`` fixture's folder.
        out: Where logs and checkpoints go.
        conditioning: Grade head mode.
        loggers: Logger entries (default: W&B only).
        callbacks: ``trainer.callbacks`` (the base's checkpoints, best and last, are kept).
        trainer: Trainer keys to add or override.
        segmentation: TJDR datamodule keys to add or override.
    """
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 2,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": loggers if loggers is not None else [wandb_logger(out)],
            "callbacks": list(callbacks or []),
        }
        | (trainer or {}),
        # best.ckpt on val/score and last.ckpt (rewritten every epoch) in out/ckpt.
        "checkpoint": {"dirpath": str(out / "ckpt")},
        "lr_monitor": None,
        "media": None,
        "model": {"network": TINY_NETWORK | {"conditioning": conditioning}},
        "data": {
            "class_path": "multitask_dr.datamodules.JointDataModule",
            "init_args": {
                "segmentation": {
                    "class_path": "multitask_dr.datamodules.TJDRDataModule",
                    "init_args": {"root": str(root / "tjdr"), "image_size": 64, "batch_size": 2}
                    | (segmentation or {}),
                },
                "grading": {
                    "class_path": "multitask_dr.datamodules.RetinaMNISTDataModule",
                    "init_args": {
                        "root": str(root / "retinamnist"),
                        "size": 28,
                        "image_size": 32,
                        "batch_size": 8,
                    },
                },
            },
        },
    }
