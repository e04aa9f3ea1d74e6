"""Grade outputs: plain softmax or CORAL cumulative-link (rank-consistent ordinal).

CORAL (Cao, Mirjalili & Raschka 2020) predicts ``G - 1`` logits ``P(grade > k)`` that share one
weight vector and differ only in their bias, so the cumulative probabilities never cross.
"""

from __future__ import annotations

from typing import Literal

import torch
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
