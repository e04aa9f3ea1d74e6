"""The task's metrics, as torchmetrics ``Metric``s (they accumulate, and sync under DDP).

:class:`LesionScores` holds the lesion metric rules: per-lesion Dice and IoU from true/false
positives accumulated over the whole evaluation set at threshold 0.5, where a lesion type absent
from both the labels and the predictions of the whole set scores NaN and is left out of the
mean; AUPR is average precision over :data:`AUPR_THRESHOLDS` thresholds
(:class:`BinnedAveragePrecision`), NaN for a lesion type with no positive pixel, also left out of
the mean. :func:`grade_metrics` are the
grading metrics (accuracy, macro AUC, quadratic kappa, per-grade recall).

Pixel-level average precision has to scale to segmentation maps: torchmetrics' binned
``MultilabelAveragePrecision`` builds an ``N x C x T`` bincount per update: 7.7 s for one batch
of 8 x 4 x 96² maps at 200 thresholds on our CPU (and with ``deterministic`` mode it allocates
terabytes). Here every pixel falls in exactly one of ``T`` probability bins, so an update is one
``O(N x C)`` histogram per class and the curve is a suffix sum; the result equals torchmetrics'
for the same thresholds (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassRecall,
)

from multitask_dr.lesions import IGNORE_INDEX, LESIONS, NUM_GRADES

#: Evenly spaced thresholds of the lesion AUPR. Trained lesion maps are saturated (a quarter of
#: the exudate pixels of a real model score above 0.995), so coarse bins merge the top of the
#: ranking and read AUPR low; with this many the binned value agrees with the exact one to about
#: 1e-3 (docs/benchmarks.md, "AUPR resolution"). The histograms stay small (C x T counts).
AUPR_THRESHOLDS = 100_000


class BinnedAveragePrecision(Metric):
    """Per-label average precision over ``thresholds`` evenly spaced in ``[0, 1]``.

    A pixel counts as predicted positive at threshold ``t_k = k / (T - 1)`` when its
    probability is ``>= t_k`` (torchmetrics' rule). States are histograms summed across
    processes, so the metric is exact under DDP.

    Args:
        num_labels: Label channels ``C``.
        thresholds: Number of thresholds ``T``.
        ignore_index: Target value of pixels that are not scored.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, num_labels: int, thresholds: int = 200, ignore_index: int | None = None
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.thresholds = thresholds
        self.ignore_index = ignore_index
        zeros = torch.zeros(num_labels, thresholds, dtype=torch.long)
        self.add_state("positives", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("negatives", default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add ``(B, C, ...)`` probabilities and ``(B, C, ...)`` 0/1 targets."""
        probs = preds.detach().transpose(0, 1).reshape(self.num_labels, -1).float()
        labels = target.transpose(0, 1).reshape(self.num_labels, -1)
        bins = (probs.clamp(0, 1) * (self.thresholds - 1)).floor().long()
        valid = torch.ones_like(labels, dtype=torch.bool)
        if self.ignore_index is not None:
            valid = labels != self.ignore_index
        offsets = torch.arange(self.num_labels, device=bins.device)[:, None] * self.thresholds
        flat = bins + offsets
        size = self.num_labels * self.thresholds
        positive = valid & (labels == 1)
        negative = valid & (labels == 0)
        self.positives += torch.bincount(flat[positive], minlength=size).view_as(self.positives)
        self.negatives += torch.bincount(flat[negative], minlength=size).view_as(self.negatives)

    def curves(self) -> tuple[Tensor, Tensor, Tensor]:
        """Precision ``(C, T)``, recall ``(C, T)`` and the thresholds ``(T,)``."""
        # Pixels in bin >= k are predicted positive at threshold k: suffix sums.
        tp = self.positives.flip(1).cumsum(1).flip(1).double()
        fp = self.negatives.flip(1).cumsum(1).flip(1).double()
        predicted = tp + fp
        precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.ones_like(tp))
        recall = tp / tp[:, :1].clamp_min(1)
        thresholds = torch.linspace(0, 1, self.thresholds, device=tp.device)
        return precision.float(), recall.float(), thresholds

    def compute(self) -> Tensor:
        """``(C,)`` average precision; NaN for a label with no positive pixel."""
        precision, recall, _ = self.curves()
        next_recall = torch.cat([recall[:, 1:], torch.zeros_like(recall[:, :1])], dim=1)
        ap = ((recall - next_recall) * precision).sum(dim=1)
        has_positive = self.positives.sum(dim=1) > 0
        return torch.where(has_positive, ap, torch.full_like(ap, float("nan")))


class BinnedPrecisionRecallCurve(BinnedAveragePrecision):
    """Per-label precision-recall curves from the same histograms, as torchmetrics returns them.

    ``compute()`` gives what ``MultilabelPrecisionRecallCurve(num_labels, thresholds=T,
    ignore_index=...)`` gives for the same inputs (tested): precision and recall ``(C, T + 1)``
    (NaN where a ratio is 0/0, a last point of precision 1 and recall 0) and the ``T``
    thresholds, at the cost of one histogram per update instead of a ``N x C x T`` comparison
    (0.5 s per batch of 4 x 4 x 128² maps at 50 thresholds on our CPU, for torchmetrics).
    """

    higher_is_better = None

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        """Precision ``(C, T + 1)``, recall ``(C, T + 1)`` and thresholds ``(T,)``."""
        tp = self.positives.flip(1).cumsum(1).flip(1).double()
        fp = self.negatives.flip(1).cumsum(1).flip(1).double()
        positives = tp[:, :1]  # every pixel is >= the first threshold, 0
        nan = torch.full_like(tp, float("nan"))
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), nan)
        recall = torch.where(positives > 0, tp / positives.clamp_min(1), nan)
        precision = torch.cat([precision, torch.ones_like(precision[:, :1])], dim=1)
        recall = torch.cat([recall, torch.zeros_like(recall[:, :1])], dim=1)
        thresholds = torch.linspace(0, 1, self.thresholds, device=tp.device)
        return precision.float(), recall.float(), thresholds


class LesionScores(BinnedAveragePrecision):
    """Per-lesion and mean Dice, IoU and AUPR of lesion maps (the NaN rules above).

    ``compute()`` returns ``{"dice_MA": ..., "dice_mean": ..., "iou_...", "aupr_..."}``.

    Args:
        lesions: Lesion names, in channel order.
        threshold: Probability above which a pixel counts as lesion for Dice and IoU.
        thresholds: Number of AUPR thresholds.
        ignore_index: Target value of pixels that are not scored.
    """

    def __init__(
        self,
        lesions: Sequence[str] = LESIONS,
        threshold: float = 0.5,
        thresholds: int = AUPR_THRESHOLDS,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(len(lesions), thresholds, ignore_index)
        self.lesions = tuple(lesions)
        self.threshold = threshold
        zeros = torch.zeros(len(lesions), dtype=torch.long)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add ``(B, L, ...)`` probabilities and ``(B, L, ...)`` 0/1/ignored targets."""
        super().update(preds, target)
        probs = preds.detach().transpose(0, 1).reshape(self.num_labels, -1)
        labels = target.transpose(0, 1).reshape(self.num_labels, -1)
        valid = labels != self.ignore_index
        # torchmetrics' multilabel rule: a pixel is predicted positive strictly above threshold.
        predicted = (probs > self.threshold) & valid
        positive = (labels == 1) & valid
        self.tp += (predicted & positive).sum(dim=1)
        self.fp += (predicted & ~positive).sum(dim=1)
        self.fn += (~predicted & positive).sum(dim=1)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """Dice, IoU and AUPR per lesion and their means over the defined (non-NaN) ones."""
        tp, fp, fn = self.tp.float(), self.fp.float(), self.fn.float()
        dice = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), torch.nan)
        iou = torch.where(tp + fp + fn > 0, tp / (tp + fp + fn), torch.nan)
        aupr = torch.where(tp + fn > 0, super().compute().float(), torch.nan)
        results: dict[str, Tensor] = {}
        for name, values in (("dice", dice), ("iou", iou), ("aupr", aupr)):
            for lesion, value in zip(self.lesions, values, strict=True):
                results[f"{name}_{lesion}"] = value
            results[f"{name}_mean"] = values.nanmean()
        return results


def grade_metrics(num_grades: int = NUM_GRADES) -> MetricCollection:
    """``acc`` (micro), ``auc`` (macro), ``qwk`` (quadratic kappa) and per-grade ``recall``."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_grades, average="micro"),
            "auc": MulticlassAUROC(num_grades, average="macro"),
            "qwk": MulticlassCohenKappa(num_grades, weights="quadratic"),
            "recall": MulticlassRecall(num_grades, average=None),
        }
    )


class StageMetrics(nn.Module):
    """Everything one evaluation stage (``val`` or ``test``) accumulates, and its naming.

    Lesion scores pooled over the lesion sources and, when several are scored apart, per
    source (made on first use: sources are known at run time); grade metrics; the mean losses.

    Args:
        stage: Key prefix, ``val`` or ``test``.
    """

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage
        self.lesions = LesionScores()
        self.per_source = nn.ModuleDict()
        self.grades = grade_metrics()
        # Losses are averaged over every evaluation source here rather than with self.log,
        # which refuses one key logged from two dataloaders.
        self.seg_loss = MeanMetric()
        self.grade_loss = MeanMetric()
        self.seen: set[str] = set()

    def update_lesions(
        self, probs: Tensor, mask: Tensor, loss: Tensor | None = None, source: str | None = None
    ) -> None:
        """Add lesion probabilities against a 0/1/ignored mask (and their mean loss)."""
        self.seen.add("seg")
        self.lesions.update(probs, mask)
        if loss is not None:
            self.seg_loss.update(loss, weight=len(probs))
        if source is not None:
            if source not in self.per_source:
                self.per_source[source] = LesionScores().to(probs.device)
            self.per_source[source].update(probs, mask)

    def update_grades(self, probs: Tensor, grades: Tensor, loss: Tensor | None = None) -> None:
        """Add grade probabilities of graded images (and their mean loss)."""
        self.seen.add("grade")
        self.grades.update(probs, grades)
        if loss is not None:
            self.grade_loss.update(loss, weight=len(grades))

    def update_source(
        self,
        batch: dict[str, Any],
        out: dict[str, Tensor],
        losses: tuple[Tensor | None, Tensor | None],
        source: str | None = None,
    ) -> None:
        """Add one source batch: its lesions where it has masks, its graded images' grades.

        Args:
            batch: The source batch (see :mod:`~multitask_dr.tasks.batches`).
            out: Its evaluation outputs (``lesion_probs``, ``grade_probs``).
            losses: Its segmentation and grading loss (``None`` where it has no such labels).
            source: The lesion source scored apart, if any
                (:func:`~multitask_dr.tasks.batches.lesion_source`).
        """
        seg, grade = losses
        if seg is not None:
            self.update_lesions(out["lesion_probs"], batch["mask"].long(), seg, source)
        if grade is not None:
            graded = batch["grade"] >= 0
            self.update_grades(out["grade_probs"][graded], batch["grade"][graded], grade)

    def compute(self, seen: set[str] | None = None) -> dict[str, Tensor]:
        """Named results of what was seen (``seen`` overrides it: DDP agrees on it), then reset.

        ``{stage}/score`` is the mean of the headline metrics available: lesion mAUPR and
        grade QWK.
        """
        seen = self.seen if seen is None else seen
        stage, results, headline = self.stage, {}, []
        if "seg" in seen:
            scored = {"": self.lesions} | {f"/{k}": m for k, m in self.per_source.items()}
            for source, metric in scored.items():
                results |= {f"{stage}/seg{source}/{k}": v for k, v in metric.compute().items()}
            headline.append(results[f"{stage}/seg/aupr_mean"])
            results[f"{stage}/seg_loss"] = self.seg_loss.compute()
        if "grade" in seen:
            grade = self.grades.compute()
            for name in ("acc", "auc", "qwk"):
                results[f"{stage}/grade/{name}"] = grade[name].float()
            for g, value in enumerate(grade["recall"]):
                results[f"{stage}/grade/recall_{g}"] = value.float()
            headline.append(results[f"{stage}/grade/qwk"])
            results[f"{stage}/grade_loss"] = self.grade_loss.compute()
        if headline:
            results[f"{stage}/score"] = torch.stack(headline).nanmean()
        self.reset()
        return results

    def reset(self) -> None:
        """Forget everything accumulated."""
        for metric in (self.lesions, *self.per_source.values(), self.grades):
            metric.reset()
        self.seg_loss.reset()
        self.grade_loss.reset()
        self.seen = set()
