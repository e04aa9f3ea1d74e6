"""The best checkpoint of a ``fit`` as a W&B model artifact (works offline too)."""

from __future__ import annotations

from pathlib import Path

from lightning import Trainer
from lightning.pytorch.loggers import WandbLogger


def log_model_artifact(trainer: Trainer, logger: WandbLogger) -> None:
    """Log ``ModelCheckpoint.best_model_path`` (or the last) as ``model-<run id>``.

    Aliases ``best`` and ``latest``; the artifact is staged locally and uploaded by ``wandb
    sync`` when the run is offline. Does nothing when the logger uploads checkpoints itself
    (online ``log_model``) or no checkpoint was written.
    """
    if getattr(logger, "_log_model", False):
        return
    checkpoint = trainer.checkpoint_callback
    path = getattr(checkpoint, "best_model_path", "") or getattr(checkpoint, "last_model_path", "")
    if not path or not Path(path).exists():
        return
    import wandb

    score = getattr(checkpoint, "best_model_score", None)
    run = logger.experiment
    artifact = wandb.Artifact(
        f"model-{run.id}",
        type="model",
        metadata={
            "monitor": getattr(checkpoint, "monitor", None),
            "score": None if score is None else float(score),
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "checkpoint": str(path),
        },
    )
    artifact.add_file(str(path), name=Path(path).name)
    run.log_artifact(artifact, aliases=["best", "latest"])
