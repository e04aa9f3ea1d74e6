"""Exact per-lesion decomposition of a ``bottleneck`` grade head.

The bottleneck head maps each lesion type's features through its own linear map, so

    logit[b, k] = sum_l contribution[b, l, k] + bias[k]        (exactly)

A lesion type that is absent still contributes a constant (its zero-map features are not zero),
so each contribution is also reported **relative to that absent-lesion baseline**:
``relative = contribution - baseline``. Because lesion ``l``'s features depend on map ``l``
only, ``relative[:, l]`` is exactly the logit change that erasing map ``l`` causes (what
:func:`~multitask_dr.attribution.ablation.ablate_lesion_maps` measures by re-running the head).

Ranking score: for ``coral`` the single shared contribution (higher = higher grade); for
``softmax`` the relative contribution to the chosen grade's logit minus its mean over grades
(softmax ignores a shift shared by all logits, so only this centred value is meaningful).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from multitask_dr.attribution.core import LesionEvidence, as_network, regrade
from multitask_dr.lesions import LESIONS


@dataclass
class Decomposition:
    """Per-lesion contributions of a batch.

    Attributes:
        contributions: ``(B, L, K)``; ``K = G`` for softmax, ``1`` for coral (the one
            contribution is added to every cumulative logit).
        baseline: ``(B, L, K)`` contribution of each lesion type with its map erased.
        bias: ``(G,)`` or ``(G - 1,)`` head bias.
        logits: ``(B, G)`` or ``(B, G - 1)`` grade logits the contributions add up to.
        grade_output: ``softmax`` or ``coral``.
        lesions: Lesion names in channel order.
    """

    contributions: Tensor
    baseline: Tensor
    bias: Tensor
    logits: Tensor
    grade_output: str
    lesions: tuple[str, ...] = LESIONS

    @property
    def relative(self) -> Tensor:
        """``(B, L, K)`` contribution minus the absent-lesion baseline."""
        return self.contributions - self.baseline

    @property
    def residual(self) -> float:
        """Largest ``|sum_l contribution + bias - logit|`` (0 up to float rounding)."""
        recomposed = self.contributions.sum(dim=1) + self.bias
        return float((recomposed - self.logits).abs().max())

    def scores(self, grade: int | Tensor | None = None) -> Tensor:
        """``(B, L)`` ranking scores (see the module docstring).

        Args:
            grade: Grade whose logit is explained (softmax only): an int, a ``(B,)`` tensor,
                or ``None`` for each image's predicted grade.
        """
        relative = self.relative
        if self.grade_output == "coral":
            return relative[..., 0]
        if grade is None:
            grade = self.logits.argmax(dim=1)
        grade = torch.as_tensor(grade, device=relative.device).expand(relative.shape[0])
        chosen = relative.gather(2, grade.view(-1, 1, 1).expand(-1, relative.shape[1], 1))
        return chosen[..., 0] - relative.mean(dim=2)

    def ranking(self, sample: int = 0, grade: int | None = None) -> list[tuple[str, float]]:
        """``(lesion, score)`` of one image, largest first."""
        values = self.scores(grade)[sample].tolist()
        return sorted(zip(self.lesions, values, strict=True), key=lambda p: p[1], reverse=True)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per image, lesion and logit (``output``)."""
        outputs = (
            ["severity"]
            if self.grade_output == "coral"
            else [f"grade {k}" for k in range(self.contributions.shape[2])]
        )
        rows = []
        for b in range(self.contributions.shape[0]):
            for c, lesion in enumerate(self.lesions):
                for k, output in enumerate(outputs):
                    rows.append(
                        {
                            "sample": b,
                            "lesion": lesion,
                            "output": output,
                            "contribution": float(self.contributions[b, c, k]),
                            "baseline": float(self.baseline[b, c, k]),
                            "relative": float(self.relative[b, c, k]),
                        }
                    )
        return rows

    def to_frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame (pandas comes with medmnist)."""
        import pandas as pd

        return pd.DataFrame(self.rows())


def decompose(model: nn.Module, evidence: LesionEvidence) -> Decomposition:
    """Exact per-lesion decomposition of the grade logits of a ``bottleneck`` head.

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.

    Returns:
        The decomposition; ``residual`` checks the identity.

    Raises:
        ValueError: When the head is not an additive ``bottleneck`` (an MLP head or a ``max``
            bottleneck has no exact additive decomposition: use ablation or integrated
            gradients).
    """
    net = as_network(model)
    if net.grade_head.conditioning == "bottleneck" and net.grade_head.bottleneck_combine != "sum":
        raise ValueError(
            "exact decomposition needs bottleneck_combine='sum'; a 'max' bottleneck (the most "
            "severe lesion decides) is explained by ablate_lesion_maps"
        )
    if evidence.contributions is None or net.grade_head.conditioning != "bottleneck":
        raise ValueError(
            f"exact decomposition needs conditioning='bottleneck', got "
            f"{net.grade_head.conditioning!r}; use ablate_lesion_maps or integrated_gradients"
        )
    with torch.no_grad():
        # All maps erased at once: each lesion's contribution depends on its own map only, so
        # this one pass gives every lesion's absent-lesion baseline.
        _, baseline = regrade(net, evidence, torch.zeros_like(evidence.lesion_probs))
    assert baseline is not None
    return Decomposition(
        evidence.contributions,
        baseline,
        net.grade_head.bias.detach(),
        evidence.grade_logits,
        evidence.grade_output,
        evidence.lesions,
    )
