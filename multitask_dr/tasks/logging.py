"""Logging the task's evaluation metrics once per metric, whatever the number of dataloaders.

Lightning repeats what an epoch-end hook logs in every dataloader's column of its results table
(and in every dataloader's dict that ``Trainer.test`` returns). The metrics are therefore logged
from the stage's last batch, with ``add_dataloader_idx=False``: each key then appears once, in
the last dataloader's column. A stage whose last batch never came (no batch) logs at epoch end.
"""

from __future__ import annotations

import warnings
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from multitask_dr.tasks.metrics import StageMetrics


def compute_agreed(trainer: Trainer, metrics: StageMetrics) -> dict[str, Any]:
    """``metrics.compute()``, with every process agreeing on what was seen under DDP.

    Under DDP every process must call ``compute()`` (it all-gathers the states), also one whose
    share of the data had no masks or no grades, or the others wait forever.
    """
    if trainer.world_size == 1:
        return metrics.compute()
    decide = trainer.strategy.reduce_boolean_decision
    return metrics.compute({k for k in ("seg", "grade") if decide(k in metrics.seen, all=False)})


class EvaluationMetricsLogger(Callback):
    """Log a task's ``metrics[stage]`` (:class:`StageMetrics`) after the stage's last batch."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Silence Lightning's advice to reduce epoch metrics, once a Trainer runs the task.

        The values come from torchmetrics' ``compute()``, which already all-gathers every
        process's state under DDP: Lightning's advice to add ``sync_dist=True`` (average
        per-process values) does not apply to them, and would print once per metric. The filter
        is installed here, when the task runs, rather than when it is imported.
        """
        warnings.filterwarnings(
            "ignore",
            message=r"It is recommended to use `self\.log\('(val|test)/",
            category=PossibleUserWarning,
        )

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        results = compute_agreed(trainer, pl_module.metrics[stage])
        pl_module.log_dict(results, batch_size=1, add_dataloader_idx=False)

    def _after_batch(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.testing:
            loop = trainer.test_loop
        elif trainer.validating:
            loop = trainer.validate_loop
        else:
            loop = trainer.fit_loop.epoch_loop.val_loop
        if loop.batch_progress.is_last_batch:
            self._log(trainer, pl_module, stage)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        """After the epoch's last batch, log the validation metrics."""
        self._after_batch(trainer, pl_module, "val")

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        """After the last batch, log the test metrics."""
        self._after_batch(trainer, pl_module, "test")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log validation metrics no last batch logged."""
        if pl_module.metrics["val"].seen:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log test metrics no last batch logged."""
        if pl_module.metrics["test"].seen:
            self._log(trainer, pl_module, "test")
