"""What the W&B callbacks read of a run: its logger, its evaluation sources, their normalisation.

Only the public datamodule protocol is used: a datamodule of several sources lists them with
``sources()`` (see :class:`~multitask_dr.datamodules.joint.JointDataModule`), and each source
names its normalisation in ``mean`` and ``std``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lightning import Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor


def wandb_logger(trainer: Trainer) -> WandbLogger | None:
    """The trainer's first :class:`WandbLogger`, if any."""
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def evaluation_sources(trainer: Trainer) -> list[tuple[str, Any]]:
    """``(name, datamodule)`` per evaluation dataloader.

    A datamodule of several sources says so through a public ``sources()`` method (see
    :class:`~multitask_dr.datamodules.joint.JointDataModule`); any other is one source.
    """
    datamodule = trainer.datamodule
    if hasattr(datamodule, "sources"):
        return list(datamodule.sources())
    name = type(datamodule).__name__.removesuffix("DataModule") if datamodule else "data"
    return [(name, datamodule)]


def source_names(trainer: Trainer) -> list[str]:
    """Name of each evaluation dataloader's source (``segmentation``/``grading`` when joint)."""
    return [name for name, _ in evaluation_sources(trainer)]


def normalisation(trainer: Trainer, dataloader_idx: int) -> tuple[Any, Any] | None:
    """``(mean, std)`` the dataloader's images were normalised with, when the datamodule says."""
    parts = [part for _, part in evaluation_sources(trainer)]
    part = parts[min(dataloader_idx, len(parts) - 1)]
    mean, std = getattr(part, "mean", None), getattr(part, "std", None)
    return None if mean is None or std is None else (mean, std)


def display_image(image: Tensor, stats: tuple[Any, Any] | None) -> np.ndarray:
    """A normalised ``(3, H, W)`` image back to ``(H, W, 3)`` uint8 for display."""
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    if stats is not None:
        mean, std = (np.asarray(v, dtype=np.float32) for v in stats)
        array = array * std + mean
    else:  # unknown normalisation: stretch to the full range
        array = (array - array.min()) / max(float(array.max() - array.min()), 1e-6)
    return np.ascontiguousarray((array.clip(0, 1) * 255).round().astype(np.uint8))
