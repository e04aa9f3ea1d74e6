"""The task's losses: Dice + BCE for lesion maps, (focal, SORD) cross-entropy or CORAL for grades.

Both ignore what is not labelled: lesion pixels marked :data:`~multitask_dr.lesions.IGNORE_INDEX`
and grades of ``-1``. :func:`combine_losses` weighs the two (fixed weights or learned
uncertainties); a batch that has only one kind of label contributes only that loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multitask_dr.lesions import IGNORE_INDEX, NUM_GRADES
from multitask_dr.models.ordinal import GradeOutput

if TYPE_CHECKING:
    from multitask_dr.tasks.regularisation import Mixup

LossWeighting = Literal["fixed", "uncertainty"]


def coral_targets(grades: Tensor, num_grades: int) -> Tensor:
    """Grades ``(B,)`` -> binary ``(B, G - 1)`` targets ``[grade > k]``."""
    thresholds = torch.arange(num_grades - 1, device=grades.device)
    return (grades.unsqueeze(1) > thresholds).float()


def sord_targets(grades: Tensor, num_grades: int, scale: float) -> Tensor:
    """Soft ordinal targets (SORD, Diaz & Marathe 2019): ``softmax(-scale * (k - grade)²)``.

    Neighbouring grades get more mass than distant ones, so the loss penalises a 0 -> 4 error
    more than 0 -> 1, as quadratic kappa does.

    Args:
        grades: Integer grades ``(B,)``.
        num_grades: Number of ordered grades ``G``.
        scale: Sharpness; large values approach one-hot targets.

    Returns:
        ``(B, G)`` target distributions.
    """
    ranks = torch.arange(num_grades, device=grades.device, dtype=torch.float32)
    distance = (ranks[None, :] - grades[:, None].float()) ** 2
    return torch.softmax(-scale * distance, dim=1)


def grade_loss(
    logits: Tensor,
    grades: Tensor,
    output: GradeOutput,
    class_weights: Tensor | None = None,
    label_smoothing: float = 0.0,
    focal_gamma: float = 0.0,
    sord_scale: float = 0.0,
) -> Tensor:
    """Grading loss for the chosen output.

    Args:
        logits: Head output ``(B, G)`` or ``(B, G - 1)``.
        grades: Integer grades ``(B,)``.
        output: ``softmax`` (cross-entropy / focal) or ``coral`` (binary cross-entropy per rank).
        class_weights: Per-grade weights (focal alpha), ``(G,)``.
        label_smoothing: Cross-entropy label smoothing (softmax only).
        focal_gamma: Focal-loss exponent; 0 gives plain cross-entropy.
        sord_scale: If positive, cross-entropy against soft ordinal targets of this sharpness
            (:func:`sord_targets`, softmax only) instead of one-hot ones; label smoothing and
            focal weighting then still apply on top.

    Returns:
        The mean loss.
    """
    if output == "coral":
        targets = coral_targets(grades, logits.shape[1] + 1)
        losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1)
        if class_weights is not None:
            losses = losses * class_weights[grades]
        return losses.mean()
    # Index targets (one-hot) unless SORD's soft distributions replace them.
    targets = sord_targets(grades, logits.shape[1], sord_scale) if sord_scale > 0 else grades
    ce = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    if focal_gamma > 0:
        p_true = logits.softmax(-1).gather(1, grades[:, None]).squeeze(1)
        ce = ce * (1 - p_true).pow(focal_gamma)
    if class_weights is not None:
        ce = ce * class_weights[grades]
    return ce.mean()


class SegmentationLoss(nn.Module):
    """Dice + BCE of lesion logits over the scored pixels.

    Args:
        dice_weight: Share of Dice in the loss (the rest is BCE).
        pos_weight: BCE weight of lesion pixels (lesions are a tiny share of the image).
    """

    def __init__(self, dice_weight: float = 0.5, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.pos_weight = pos_weight
        self.dice = smp.losses.DiceLoss("multilabel", from_logits=True, ignore_index=IGNORE_INDEX)

    def forward(self, logits: Tensor, mask: Tensor) -> Tensor:
        """The loss of ``(B, L, H, W)`` logits against a mask of 0/1/``IGNORE_INDEX``."""
        valid = mask != IGNORE_INDEX
        target = (mask == 1).float()
        bce = F.binary_cross_entropy_with_logits(
            logits,
            target,
            reduction="none",
            pos_weight=torch.tensor(self.pos_weight, device=logits.device),
        )
        bce = (bce * valid).sum() / valid.sum().clamp_min(1)
        dice = self.dice(logits, mask.long())
        return self.dice_weight * dice + (1 - self.dice_weight) * bce


class GradeLoss(nn.Module):
    """:func:`grade_loss` with its settings, over the graded images of a batch.

    Args:
        grade_output: ``softmax`` or ``coral`` (the network's output).
        class_weights: Per-grade loss weights (focal alpha), or ``None``.
        label_smoothing: Cross-entropy label smoothing.
        focal_gamma: Focal-loss exponent (0 = cross-entropy).
        sord_scale: If positive, cross-entropy against SORD targets (softmax only).

    Raises:
        ValueError: For SORD with CORAL outputs or class weights of the wrong length.
    """

    def __init__(
        self,
        grade_output: GradeOutput = "softmax",
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        focal_gamma: float = 0.0,
        sord_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if sord_scale > 0 and grade_output != "softmax":
            raise ValueError("sord_scale needs grade_output: softmax (SORD targets a distribution)")
        if class_weights is not None and len(class_weights) != NUM_GRADES:
            raise ValueError(
                f"grade_class_weights needs {NUM_GRADES} values, got {len(class_weights)}"
            )
        self.grade_output = grade_output
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma
        self.sord_scale = sord_scale
        # Not persistent: the weights are a setting (hyper-parameter), not learned state.
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
            persistent=False,
        )

    def forward(self, logits: Tensor, grades: Tensor) -> Tensor:
        """The loss of ``logits`` against integer ``grades`` (all of them graded)."""
        return grade_loss(
            logits,
            grades,
            self.grade_output,
            self.class_weights,
            self.label_smoothing,
            self.focal_gamma,
            self.sord_scale,
        )

    def of_batch(self, logits: Tensor, grades: Tensor, mix: Mixup | None = None) -> Tensor | None:
        """The loss over a batch's graded images (``None`` if none is graded).

        Args:
            logits: Grade logits of the whole batch.
            grades: Its grades, ``-1`` where unknown.
            mix: The mixup its images went through, if any (every image is graded then): the
                loss is blended like the images.
        """
        if mix is not None:
            return mix.weight * self(logits, grades) + (1 - mix.weight) * self(
                logits, grades[mix.partner]
            )
        graded = grades >= 0
        if not graded.any():
            return None
        return self(logits[graded], grades[graded])


def combine_losses(
    seg: Tensor | None,
    grade: Tensor | None,
    weights: tuple[float, float],
    log_vars: Tensor,
    weighting: LossWeighting,
) -> Tensor:
    """Weighted sum of the task losses that are present.

    Args:
        seg: Segmentation loss, or ``None``.
        grade: Grading loss, or ``None``.
        weights: ``(seg_weight, grade_weight)`` for ``fixed`` weighting.
        log_vars: Learned per-task log variances ``(2,)`` for ``uncertainty`` weighting
            (Kendall et al. 2018): each loss counts ``exp(-s) * loss + s``.
        weighting: ``fixed`` or ``uncertainty``.
    """
    total = torch.zeros((), device=log_vars.device)
    for i, (loss, weight) in enumerate(zip((seg, grade), weights, strict=True)):
        if loss is None:
            continue
        if weighting == "uncertainty":
            total = total + torch.exp(-log_vars[i]) * loss + log_vars[i]
        else:
            total = total + weight * loss
    return total
