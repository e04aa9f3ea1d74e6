"""Gradient attributions on the lesion probability maps, summed per lesion type.

Integrated gradients (Sundararajan et al. 2017) along the straight path from a baseline
(default: every map 0, "no lesion found") to the maps the model found::

    IG[l, y, x] = (p - p0)[l, y, x] * mean over alpha of d score / d p at p0 + alpha (p - p0)

(midpoint Riemann sum). For a head that is continuous in the maps the attributions add up to
``score(p) - score(p0)`` (completeness); :attr:`GradientAttribution.completeness_gap` reports
how far off they are. ``stats`` and ``bottleneck`` heads count blobs by thresholding the maps
(:class:`~multitask_dr.models.lesion_features.LesionFeatures`), a jump that no gradient sees, so
there the gap is real and tells how much of the grade hangs on the counts. Gradient x input is
the one-step version (no path, no completeness).

Implemented here (a few lines) rather than through captum, which is not a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from multitask_dr.attribution.core import LesionEvidence, Target, grade_score, regrade
from multitask_dr.lesions import LESIONS


@dataclass
class GradientAttribution:
    """Per-pixel attributions on the lesion maps.

    Attributes:
        maps: ``(B, L, H, W)`` attribution of each map pixel to the target.
        method: ``integrated_gradients`` or ``gradient_x_input``.
        target: The explained score.
        delta: ``(B,)`` ``score(maps) - score(baseline)`` (what IG should add up to).
        lesions: Lesion names in channel order.
    """

    maps: Tensor
    method: str
    target: Target
    delta: Tensor
    lesions: tuple[str, ...] = LESIONS

    @property
    def totals(self) -> Tensor:
        """``(B, L)`` attribution summed over each lesion map."""
        return self.maps.sum(dim=(2, 3))

    @property
    def completeness_gap(self) -> Tensor:
        """``(B,)`` ``sum of attributions - delta`` (≈ 0 for continuous heads)."""
        return self.totals.sum(dim=1) - self.delta

    def ranking(self, sample: int = 0) -> list[tuple[str, float]]:
        """``(lesion, total)`` of one image, largest first."""
        values = self.totals[sample].tolist()
        return sorted(zip(self.lesions, values, strict=True), key=lambda p: p[1], reverse=True)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per image and lesion type."""
        return [
            {
                "sample": b,
                "lesion": lesion,
                "method": self.method,
                "attribution": float(self.totals[b, c]),
                "positive": float(self.maps[b, c].clamp_min(0).sum()),
                "negative": float(self.maps[b, c].clamp_max(0).sum()),
            }
            for b in range(self.maps.shape[0])
            for c, lesion in enumerate(self.lesions)
        ]

    def to_frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())


def _score_and_grad(
    model: nn.Module, evidence: LesionEvidence, probs: Tensor, target: Target
) -> tuple[Tensor, Tensor]:
    probs = probs.detach().requires_grad_(True)
    with torch.enable_grad():
        logits, _ = regrade(model, evidence, probs)
        score = grade_score(logits, evidence.grade_output, target)
        # Samples are independent, so the gradient of the sum is each sample's own gradient;
        # autograd.grad leaves the parameters' .grad untouched. A head that never reads the
        # maps (conditioning "none") has no path to them: its gradient is 0, not an error.
        (grad,) = torch.autograd.grad(score.sum(), probs, allow_unused=True)
    return score.detach(), torch.zeros_like(probs) if grad is None else grad


def integrated_gradients(
    model: nn.Module,
    evidence: LesionEvidence,
    target: Target = "expected_grade",
    steps: int = 32,
    baseline: Tensor | None = None,
) -> GradientAttribution:
    """Integrated gradients of the target with respect to the lesion maps.

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.
        target: ``"expected_grade"`` or a grade index.
        steps: Points on the path (midpoint rule).
        baseline: ``(B, L, H, W)`` start of the path (default zeros: no lesion).

    Returns:
        Per-pixel attributions, their per-lesion totals and the completeness check.
    """
    maps = evidence.lesion_probs
    start = torch.zeros_like(maps) if baseline is None else baseline.to(maps)
    total = torch.zeros_like(maps)
    for alpha in (torch.arange(steps, dtype=maps.dtype) + 0.5) / steps:
        _, grad = _score_and_grad(model, evidence, start + alpha * (maps - start), target)
        total += grad
    with torch.no_grad():
        end_logits, _ = regrade(model, evidence, maps)
        start_logits, _ = regrade(model, evidence, start)
    delta = grade_score(end_logits, evidence.grade_output, target) - grade_score(
        start_logits, evidence.grade_output, target
    )
    attribution = (maps - start) * total / steps
    return GradientAttribution(attribution, "integrated_gradients", target, delta, evidence.lesions)


def gradient_x_input(
    model: nn.Module, evidence: LesionEvidence, target: Target = "expected_grade"
) -> GradientAttribution:
    """Gradient of the target times the lesion maps (first-order, one backward pass).

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.
        target: ``"expected_grade"`` or a grade index.

    Returns:
        Per-pixel attributions; ``delta`` is the IG delta against all-zero maps, for reference.
    """
    maps = evidence.lesion_probs
    score, grad = _score_and_grad(model, evidence, maps, target)
    with torch.no_grad():
        empty, _ = regrade(model, evidence, torch.zeros_like(maps))
    delta = score - grade_score(empty, evidence.grade_output, target)
    return GradientAttribution(maps * grad, "gradient_x_input", target, delta, evidence.lesions)
