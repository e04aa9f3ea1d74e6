"""Callbacks for the W&B dashboard: media per evaluation epoch and the best model as an artifact.

:class:`WandbMedia` (the CLI's ``media`` group; ``configs/base.yaml`` turns it on)
logs, after each validation epoch (every ``every_n_epochs``) and after testing:

- ``{stage}/panel``: a fixed panel of evaluation images (the first ``num_images`` of the first
  evaluation dataloader, which never shuffles) with **one W&B mask overlay per lesion and per
  source**: ``pred_MA`` ... ``pred_SE`` and ``true_MA`` ... ``true_SE``. W&B masks are 2-D class
  maps, and lesions overlap (an exudate inside a haemorrhage), so one combined map would hide
  pixels; each overlay uses the class id of its lesion (1 MA, 2 HE, 3 EX, 4 SE) so colours agree
  across overlays;
- ``{stage}/confusion``: the grading confusion matrix the task computed for the epoch
  (``MultiTaskDR.confusion``) as a W&B confusion-matrix chart;
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from multitask_dr.lesions import (
    GRADE_NAMES,
    IGNORE_INDEX,
    LESION_NAMES,
    LESIONS,
    NO_GRADE,
    NUM_LESIONS,
    lesion_colour,
)
from multitask_dr.models.ordinal import expected_grade
from multitask_dr.predict import (
    lesion_effects,
    lesion_statistics,
    logit_contributions,
    overlay,
    release_index_mask,
)
from multitask_dr.tasks.metrics import BinnedPrecisionRecallCurve
from multitask_dr.tasks.multitask import split_sources

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: W&B mask class ids: one per lesion, shared by every overlay so colours agree.
CLASS_LABELS: dict[int, str] = {0: "background"} | {
    c + 1: lesion for c, lesion in enumerate(LESIONS)
}


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


# ---------------------------------------------------------------------------- figures
def confusion_figure(matrix: np.ndarray, title: str = "Grading confusion") -> Figure:
    """Counts per (true, predicted) grade, annotated."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(matrix))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted grade", ylabel="true grade", title=title)
    top = matrix.max() if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if top and count > top / 2 else "black"
        ax.text(col, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=9)
    return fig


def pr_figure(precision: list[np.ndarray], recall: list[np.ndarray]) -> Figure:
    """One precision-recall curve per lesion."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    for c, lesion in enumerate(LESIONS):
        colour = np.array(lesion_colour(lesion)) * 0.8
        ax.plot(recall[c], precision[c], color=colour, label=f"{lesion} ({LESION_NAMES[lesion]})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title("Lesion precision-recall (pixels)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def scored_lesions(mask: Tensor) -> list[bool]:
    """Which lesion channels of one ``(L, H, W)`` mask are annotated (not all unscored).

    A source that does not annotate a lesion type marks that whole channel
    :data:`~multitask_dr.lesions.IGNORE_INDEX`; its true area is unknown, not zero.
    """
    return (mask != IGNORE_INDEX).flatten(1).any(dim=1).tolist()


def panel_figure(panel: list[dict[str, Any]], alpha: float = 0.45) -> Figure:
    """Rows of image | true lesions | predicted lesions, with the grades in the titles."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = len(panel)
    fig = Figure(figsize=(6.6, 2.2 * rows + 0.4), dpi=100, layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 3))
    for r, item in enumerate(panel):
        pred = release_index_mask(item["pred"].astype(np.float32), 0.5)
        true_cell = (np.zeros_like(item["image"]), "no lesion labels")
        if item["true"] is not None and any(item["scored"]):
            true = release_index_mask(item["true"].astype(np.float32), 0.5)
            title = "true lesions"
            if not all(item["scored"]):
                named = [lesion for lesion, s in zip(LESIONS, item["scored"], strict=True) if s]
                title += f" ({', '.join(named)} only annotated)"
            true_cell = (overlay(item["image"], true, alpha, None), title)
        cells = [
            (item["image"], item["caption"]),
            true_cell,
            (overlay(item["image"], pred, alpha, None), "predicted lesions"),
        ]
        for ax, (image, title) in zip(axes[r], cells, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    handles = [Patch(color=lesion_colour(k), label=k) for k in LESIONS]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(LESIONS), fontsize=8)
    return fig


# ---------------------------------------------------------------------------- the callback
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
        self._confusion_before: Tensor | None = None

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
        self._panel, self._rows, self._seen_masks = [], [], False
        self._confusion_before = getattr(pl_module, "confusion", None)
        if self._active:
            if self._pr is None:
                self._pr = BinnedPrecisionRecallCurve(
                    NUM_LESIONS, thresholds=self.pr_thresholds, ignore_index=IGNORE_INDEX
                )
            self._pr = self._pr.to(pl_module.device)
            self._pr.reset()

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

    def on_test_batch_end(
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
            media[f"{stage}/panel"] = [self._wandb_image(item) for item in self._panel]
        confusion = getattr(pl_module, "confusion", None)
        if confusion is not None and confusion is not self._confusion_before:
            matrix = confusion.numpy()
            media[f"{stage}/confusion"] = wandb.plot_table(
                "wandb/confusion_matrix/v1",
                wandb.Table(
                    columns=["Actual", "Predicted", "nPredictions"],
                    data=[
                        [GRADE_NAMES[t], GRADE_NAMES[p], int(matrix[t, p])]
                        for t in range(len(matrix))
                        for p in range(len(matrix))
                    ],
                ),
                {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                {"title": f"{stage} grading confusion"},
            )
        else:
            matrix = None
        if curves is not None:
            data = [
                [lesion, float(r), float(p)]
                for c, lesion in enumerate(LESIONS)
                for p, r in zip(curves[0][c], curves[1][c], strict=True)
            ]
            table = wandb.Table(columns=["lesion", "recall", "precision"], data=data)
            media[f"{stage}/pr_curve"] = wandb.plot.line(
                table, "recall", "precision", stroke="lesion", title=f"{stage} lesion PR curves"
            )
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

    def _wandb_image(self, item: dict[str, Any]) -> Any:
        import wandb

        masks = {}
        for kind in ("pred", "true"):
            if item[kind] is None:
                continue
            for c, lesion in enumerate(LESIONS):
                if kind == "true" and not item["scored"][c]:
                    continue  # not annotated in this source: no overlay, rather than an empty one
                masks[f"{kind}_{lesion}"] = {
                    "mask_data": item[kind][c].astype(np.uint8) * (c + 1),
                    "class_labels": CLASS_LABELS,
                }
        return wandb.Image(item["image"], masks=masks, caption=item["caption"])

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
        if logger is None or getattr(logger, "_log_model", False):
            return  # no run, or the logger uploads checkpoints itself (online log_model)
        checkpoint = trainer.checkpoint_callback
        path = getattr(checkpoint, "best_model_path", "") or getattr(
            checkpoint, "last_model_path", ""
        )
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


def render(fig: Figure) -> np.ndarray:
    """A matplotlib figure as an ``(H, W, 3)`` uint8 array (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
