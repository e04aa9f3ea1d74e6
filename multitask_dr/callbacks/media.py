"""Callbacks for the W&B dashboard: media per evaluation epoch and the best model as an artifact.

:class:`WandbMedia` (the CLI's ``media`` group; ``configs/base.yaml`` turns it on)
logs, after each validation epoch (every ``every_n_epochs``) and after testing:

- ``{stage}/panel``: a fixed panel of evaluation images (the first ``num_images`` of the first
  evaluation dataloader, which never shuffles) with **one W&B mask overlay per lesion and per
  source**: ``pred_MA`` ... ``pred_SE`` and ``true_MA`` ... ``true_SE``. W&B masks are 2-D class
  maps, and lesions overlap (an exudate inside a haemorrhage), so one combined map would hide
  pixels; each overlay uses the class id of its lesion (1 MA, 2 HE, 3 EX, 4 SE) so colours agree
  across overlays;
- ``{stage}/confusion``: the grading confusion matrix of the epoch's graded images, counted
  from the grade probabilities the task returns, as a W&B confusion-matrix chart;
- ``{stage}/pr_curve``: per-lesion precision-recall curves (the values of torchmetrics'
  ``MultilabelPrecisionRecallCurve`` with ``pr_thresholds`` binned thresholds, unscored pixels
  ignored, computed from histograms by
  :class:`~multitask_dr.tasks.metrics.BinnedPrecisionRecallCurve`) as a W&B line plot;
- ``{stage}/images``: a ``wandb.Table`` with one row per evaluated image (source, name, true and
  predicted grade, grade probabilities, expected grade, predicted and true lesion area and count
  at the working resolution, per-lesion grade contributions: see :mod:`multitask_dr.predict`);
- with ``figures: true``, the same as PNG renderings (``{stage}/panel_figure``,
  ``{stage}/confusion_figure``, ``{stage}/pr_figure``), which an offline run keeps under
  ``files/media/images/`` and which need no W&B web UI to look at.

At the end of ``fit`` the best checkpoint (``ModelCheckpoint.best_model_path``) is logged as a
``model`` artifact (``model-<run id>``, aliases ``best`` and ``latest``). This works offline too:
the artifact is staged locally and uploaded by ``wandb sync``. (``WandbLogger(log_model=True)``
does the same online but raises with ``offline=True``; when it is set, this callback leaves the
artifact to the logger.)

Under DDP the PR curves and the confusion matrix are computed over every process's data
(torchmetrics syncs), table rows are gathered to rank zero, and the panel holds rank zero's
first images. Without a ``WandbLogger``, or with ``WANDB_MODE=disabled``, nothing is computed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from multitask_dr.callbacks.artifact import log_model_artifact
from multitask_dr.callbacks.charts import confusion_chart, pr_chart, wandb_image
from multitask_dr.callbacks.figures import (
    confusion_figure,
    panel_figure,
    pr_figure,
    render,
    scored_lesions,
)
from multitask_dr.callbacks.sources import (
    display_image,
    normalisation,
    source_names,
    wandb_logger,
)
from multitask_dr.lesions import (
    IGNORE_INDEX,
    LESIONS,
    NO_GRADE,
    NUM_GRADES,
    NUM_LESIONS,
)
from multitask_dr.models.ordinal import expected_grade
from multitask_dr.predict import lesion_effects, lesion_statistics, logit_contributions
from multitask_dr.tasks.batches import split_sources
from multitask_dr.tasks.metrics import BinnedPrecisionRecallCurve


class WandbMedia(Callback):
    """Log evaluation media and tables to W&B, and the best checkpoint as an artifact.

    See the module docstring for what is logged under which key.

    Args:
        num_images: Images in the fixed panel (first images of the first evaluation
            dataloader; 0 = no panel).
        every_n_epochs: Log validation media every this many epochs (the last epoch and
            ``test`` always log).
        threshold: Lesion probability above which a pixel counts as lesion for the panel,
            areas and counts (the metrics use 0.5).
        pr_thresholds: Binned thresholds of the PR curves (memory does not grow with the data).
        table: Log the per-image ``wandb.Table``.
        lesion_effects: Add each lesion's effect on the expected grade (map ablation, one more
            encoder pass per evaluated image; needs ``multitask_dr.attribution``) to the table.
        figures: Also log PNG renderings of the panel, confusion matrix and PR curves.
        log_model: Log the best checkpoint as a W&B model artifact at the end of ``fit``.
    """

    def __init__(
        self,
        num_images: int = 8,
        every_n_epochs: int = 1,
        threshold: float = 0.5,
        pr_thresholds: int = 50,
        table: bool = True,
        lesion_effects: bool = True,
        figures: bool = True,
        log_model: bool = True,
    ) -> None:
        super().__init__()
        self.num_images = num_images
        self.every_n_epochs = max(every_n_epochs, 1)
        self.threshold = threshold
        self.pr_thresholds = pr_thresholds
        self.table = table
        self.lesion_effects = lesion_effects
        self.figures = figures
        self.log_model = log_model
        self._active = False
        self._warned = False
        self._panel: list[dict[str, Any]] = []
        self._rows: list[dict[str, Any]] = []
        self._pr: BinnedPrecisionRecallCurve | None = None
        self._seen_masks = False
        self._confusion: MulticlassConfusionMatrix | None = None
        self._seen_grades = False

    # ------------------------------------------------------------------ epoch bookkeeping
    def _logger(self, trainer: Trainer) -> WandbLogger | None:
        logger = wandb_logger(trainer)
        if logger is None:
            if not self._warned:
                rank_zero_warn("WandbMedia: the trainer has no WandbLogger; nothing is logged")
                self._warned = True
            return None
        # A disabled run (WANDB_MODE=disabled) takes everything and stores nothing: skip the work.
        # Decided from settings, never from logger.experiment, so every DDP rank agrees.
        mode = getattr(logger, "_wandb_init", {}).get("mode") or os.environ.get("WANDB_MODE")
        if mode == "disabled" or os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true"):
            return None
        return logger

    def _start(self, trainer: Trainer, pl_module: LightningModule, testing: bool) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch == trainer.max_epochs - 1
        due = testing or last or trainer.current_epoch % self.every_n_epochs == 0
        self._active = due and not trainer.sanity_checking and self._logger(trainer) is not None
        self._panel, self._rows, self._seen_masks, self._seen_grades = [], [], False, False
        if self._active:
            if self._pr is None or self._confusion is None:
                self._pr = BinnedPrecisionRecallCurve(
                    NUM_LESIONS, thresholds=self.pr_thresholds, ignore_index=IGNORE_INDEX
                )
                self._confusion = MulticlassConfusionMatrix(NUM_GRADES)
            self._pr = self._pr.to(pl_module.device)
            self._confusion = self._confusion.to(pl_module.device)
            self._pr.reset()
            self._confusion.reset()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Decide whether this epoch logs media; reset the collections."""
        self._start(trainer, pl_module, testing=False)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Testing always logs media."""
        self._start(trainer, pl_module, testing=True)

    # ------------------------------------------------------------------ per batch
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Collect panel images, table rows and PR-curve counts."""
        if self._active:
            self._collect(trainer, pl_module, outputs, batch, dataloader_idx)

    # Test batches are collected exactly as validation batches.
    on_test_batch_end = on_validation_batch_end

    @torch.no_grad()
    def _collect(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        dataloader_idx: int,
    ) -> None:
        names = source_names(trainer)
        source = names[min(dataloader_idx, len(names) - 1)]
        stats = normalisation(trainer, dataloader_idx)
        for key, part in split_sources(batch).items():
            out = outputs.get(key) if isinstance(outputs, dict) else None
            if out is None:  # a task that returns nothing: run the model again
                forward = getattr(pl_module, "evaluation_forward", pl_module)
                out = forward(part["image"])
            probs = out["lesion_probs"].float()
            mask = part.get("mask")
            if mask is not None:
                self._pr.update(probs, mask.long())  # type: ignore[union-attr]
                self._seen_masks = True
            grade_probs = out["grade_probs"].float()
            graded = part["grade"] >= 0
            if graded.any():
                # From the outputs the task returns, so the callback needs nothing else of it.
                self._confusion.update(grade_probs[graded], part["grade"][graded])  # type: ignore[union-attr]
                self._seen_grades = True
            contributions = out.get("contributions")
            logit = None
            if contributions is not None:
                logit = logit_contributions(contributions, grade_probs).cpu()
            effects = None
            if self.table and self.lesion_effects:
                effects = lesion_effects(pl_module, part["image"])
            self._rows += self._table_rows(source, part, probs, grade_probs, mask, logit, effects)
            if trainer.is_global_zero and len(self._panel) < self.num_images:
                self._add_to_panel(part, probs, grade_probs, mask, stats)

    def _table_rows(
        self,
        source: str,
        part: dict[str, Any],
        probs: Tensor,
        grade_probs: Tensor,
        mask: Tensor | None,
        logit: Tensor | None,
        effects: Tensor | None,
    ) -> list[dict[str, Any]]:
        if not self.table:
            return []
        rows = []
        probs_np = probs.cpu().numpy()
        binary = probs_np > self.threshold
        names = part.get("name") or [f"{source}_{len(self._rows) + i}" for i in range(len(probs))]
        for i in range(len(probs_np)):
            true_grade = int(part["grade"][i])
            pred_grade = int(grade_probs[i].argmax())
            row: dict[str, Any] = {
                "source": source,
                "name": str(names[i]),
                "grade_true": None if true_grade == NO_GRADE else true_grade,
                "grade_pred": pred_grade,
                "correct": None if true_grade == NO_GRADE else true_grade == pred_grade,
                "expected_grade": float(expected_grade(grade_probs[i])),
            }
            row |= {f"p{g}": float(p) for g, p in enumerate(grade_probs[i].tolist())}
            predicted = lesion_statistics(binary[i], probs_np[i])
            true = None
            scored = [False] * len(LESIONS)
            if mask is not None:
                true_np = (mask[i] == 1).cpu().numpy()
                true = lesion_statistics(true_np, true_np.astype(np.float32))
                scored = scored_lesions(mask[i])
            for c, lesion in enumerate(LESIONS):
                row[f"{lesion}_area_pred"] = predicted[lesion]["area_px"]
                row[f"{lesion}_count_pred"] = predicted[lesion]["count"]
                # A lesion type the source does not annotate has no true area, not area 0.
                known = true is not None and scored[c]
                row[f"{lesion}_area_true"] = true[lesion]["area_px"] if known else None
                row[f"{lesion}_count_true"] = true[lesion]["count"] if known else None
                row[f"{lesion}_contribution"] = None if logit is None else float(logit[i, c])
                row[f"{lesion}_effect"] = None if effects is None else float(effects[i, c])
            rows.append(row)
        return rows

    def _add_to_panel(
        self,
        part: dict[str, Any],
        probs: Tensor,
        grade_probs: Tensor,
        mask: Tensor | None,
        stats: tuple[Any, Any] | None,
    ) -> None:
        for i in range(len(probs)):
            if len(self._panel) >= self.num_images:
                return
            true_grade = int(part["grade"][i])
            pred = int(grade_probs[i].argmax())
            name = part["name"][i] if "name" in part else f"image {len(self._panel)}"
            truth = "?" if true_grade == NO_GRADE else str(true_grade)
            caption = f"{name}: grade {truth} -> {pred} (p={float(grade_probs[i, pred]):.2f})"
            self._panel.append(
                {
                    "image": display_image(part["image"][i], stats),
                    "pred": (probs[i] > self.threshold).cpu().numpy(),
                    "true": None if mask is None else (mask[i] == 1).cpu().numpy(),
                    "scored": [False] * len(LESIONS) if mask is None else scored_lesions(mask[i]),
                    "caption": caption,
                }
            )

    # ------------------------------------------------------------------ epoch end
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the epoch's media (after the task has computed its metrics)."""
        self._finish(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the test media."""
        self._finish(trainer, pl_module, "test")

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self._active:
            return
        self._active = False
        # Collective steps first, on every process alike.
        curves = None
        if trainer.strategy.reduce_boolean_decision(self._seen_masks, all=False):
            precision, recall, _ = self._pr.compute()  # type: ignore[union-attr]
            curves = ([p.cpu().numpy() for p in precision], [r.cpu().numpy() for r in recall])
        matrix = None
        if trainer.strategy.reduce_boolean_decision(self._seen_grades, all=False):
            matrix = self._confusion.compute().cpu().numpy()  # type: ignore[union-attr]
        rows = self._rows
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        if not trainer.is_global_zero:
            return
        logger = self._logger(trainer)
        if logger is None:
            return
        import wandb

        media: dict[str, Any] = {}
        if self._panel:
            media[f"{stage}/panel"] = [wandb_image(item) for item in self._panel]
        if matrix is not None:
            media[f"{stage}/confusion"] = confusion_chart(matrix, stage)
        if curves is not None:
            media[f"{stage}/pr_curve"] = pr_chart(*curves, stage)
        if rows:
            columns = list(dict.fromkeys(key for row in rows for key in row))
            media[f"{stage}/images"] = wandb.Table(
                columns=columns, data=[[row.get(c) for c in columns] for row in rows]
            )
        if self.figures:
            media |= self._figures(stage, matrix, curves)
        if media:
            logger.experiment.log(media | {"trainer/global_step": trainer.global_step})
        self._panel, self._rows = [], []

    def _figures(
        self,
        stage: str,
        matrix: np.ndarray | None,
        curves: tuple[list[np.ndarray], list[np.ndarray]] | None,
    ) -> dict[str, Any]:
        import wandb

        figures = {}
        if self._panel:
            figures[f"{stage}/panel_figure"] = panel_figure(self._panel)
        if matrix is not None:
            figures[f"{stage}/confusion_figure"] = confusion_figure(matrix, f"{stage} grading")
        if curves is not None:
            figures[f"{stage}/pr_figure"] = pr_figure(*curves)
        return {key: wandb.Image(render(fig)) for key, fig in figures.items()}

    # ------------------------------------------------------------------ model artifact
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the best checkpoint as a model artifact (rank zero)."""
        if not self.log_model or not trainer.is_global_zero:
            return
        logger = self._logger(trainer)
        if logger is not None:
            log_model_artifact(trainer, logger)
