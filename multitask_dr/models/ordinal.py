"""Grade outputs: plain softmax or CORAL cumulative-link (rank-consistent ordinal).

CORAL (Cao, Mirjalili & Raschka 2020) predicts ``G - 1`` logits ``P(grade > k)`` that share one
weight vector and differ only in their bias, so the cumulative probabilities never cross.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GradeOutput = Literal["softmax", "coral"]


def num_outputs(num_grades: int, output: GradeOutput) -> int:
    """Logits a head must produce for ``output``."""
    return num_grades - 1 if output == "coral" else num_grades


class CoralLayer(nn.Module):
    """Shared-weight linear layer with ``G - 1`` ordered biases.

    Args:
        in_features: Input width.
        num_grades: Number of ordered grades ``G``.
    """

    def __init__(self, in_features: int, num_grades: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1, bias=False)
        self.bias = nn.Parameter(torch.linspace(1.0, -1.0, num_grades - 1))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_features)`` -> ``(B, G - 1)`` cumulative logits."""
        return self.linear(x) + self.bias


def output_layer(in_features: int, num_grades: int, output: GradeOutput) -> nn.Module:
    """The last layer of a grade head for ``output``."""
    if output == "coral":
        return CoralLayer(in_features, num_grades)
    return nn.Linear(in_features, num_grades)


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


def grade_probabilities(logits: Tensor, output: GradeOutput) -> Tensor:
    """Class probabilities ``(B, G)`` from a head's logits."""
    if output == "softmax":
        return logits.softmax(dim=-1)
    # P(grade > k), k = 0..G-2. CORAL's ordered biases make it non-increasing once trained;
    # the running minimum enforces that at any point so the result is always a distribution.
    above = torch.cummin(torch.sigmoid(logits), dim=1).values
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    cumulative = torch.cat([ones, above, zeros], dim=1)
    return cumulative[:, :-1] - cumulative[:, 1:]


def expected_grade(probs: Tensor) -> Tensor:
    """Expected grade ``sum_k k * P(grade = k)`` of grade probabilities ``(..., G)``.

    A continuous severity in ``[0, G - 1]``: what attribution explains and reports show beside
    the most probable grade.
    """
    grades = torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    return probs @ grades


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
