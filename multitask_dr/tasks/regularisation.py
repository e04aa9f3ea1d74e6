"""Regularisation of training batches: mixup of grading batches, teacher forcing of lesion maps.

Both draw from torch's global generator, which the per-step seed
(:class:`~multitask_dr.seeding.StepSeed`) fixes, so a resumed ``fit`` draws what a straight one
would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Mixup:
    """One mixup draw: each image ``i`` becomes ``weight * x[i] + (1 - weight) * x[partner[i]]``."""

    weight: float
    partner: Tensor

    def apply(self, images: Tensor) -> Tensor:
        """Blend ``images`` ``(B, ...)`` with their partners."""
        return self.weight * images + (1 - self.weight) * images[self.partner]


def draw_mixup(batch: dict[str, Any], alpha: float) -> Mixup | None:
    """A mixup (Zhang et al. 2018) for a training batch, or ``None`` where it does not apply.

    Applies with ``alpha > 0`` to batches of two or more images that are all graded and carry
    no masks: a blended lesion map has no meaning for a grade. The weight is drawn from
    ``Beta(alpha, alpha)``.
    """
    if alpha <= 0 or "mask" in batch or len(batch["image"]) < 2:
        return None
    if not bool((batch["grade"] >= 0).all()):
        return None
    weight = torch.distributions.Beta(alpha, alpha).sample().item()
    partner = torch.randperm(len(batch["image"]), device=batch["image"].device)
    return Mixup(weight=weight, partner=partner)


def teacher_maps(batch: dict[str, Any], share: float, reads_maps: bool) -> Tensor | None:
    """Annotated lesion maps for the grade head, in a ``share`` of the batches that qualify.

    Only batches with both masks and grades qualify (phantoms), and only for a head that reads
    the maps (``reads_maps``). The head then learns the lesion -> grade rule from clean maps
    while the decoder still learns from the masks. Unscored (``255``) pixels count as
    background.
    """
    if share <= 0 or "mask" not in batch or not reads_maps:
        return None
    if not bool((batch["grade"] >= 0).any()) or torch.rand(()).item() >= share:
        return None
    return (batch["mask"] == 1).float()
