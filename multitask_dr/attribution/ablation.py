"""Counterfactual lesion ablation: erase lesion evidence, re-grade, report the change.

Two ways to erase:

- **From the lesion maps** (:func:`ablate_lesion_maps`, :func:`ablation_curves`): zero (or
  scale) one lesion type's probability map before the grade head. Cheap (the encoder runs
  once) and answers "how much does the head rely on what the lesion decoder found?". A head
  with ``conditioning: none`` never reads the maps, so nothing changes: that is a finding, not a
  bug.
- **From the image** (:func:`ablate_by_inpainting`): paint the lesion's pixels over with
  ``cv2.inpaint`` and run the whole model again. Works for every head, including ``none``,
  whose grade can only see lesions through the encoder.

``effect = score(original) - score(ablated)``: how much the erased evidence raised the target
(expected grade by default). Positive = the lesion pushed the grade up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from multitask_dr.attribution.core import (
    LesionEvidence,
    Target,
    as_network,
    encode,
    eval_mode,
    regrade,
)
from multitask_dr.lesions import LESIONS
from multitask_dr.models.ordinal import expected_grade, grade_probabilities

ALL = "all"


@dataclass
class Ablation:
    """Grade probabilities before and after each edit.

    Attributes:
        names: What each edit erased (a lesion type, ``"all"``, or an instance name).
        original_probs: ``(B, G)`` grade probabilities without edits.
        ablated_probs: ``(B, N, G)`` grade probabilities after each of the ``N`` edits.
        target: What ``effect`` measures (see :func:`~multitask_dr.attribution.core.grade_score`).
        method: ``lesion_map``, ``inpainting`` or ``instance``.
    """

    names: tuple[str, ...]
    original_probs: Tensor
    ablated_probs: Tensor
    target: Target
    method: str

    def _score(self, probs: Tensor) -> Tensor:
        if self.target == "expected_grade":
            return expected_grade(probs)
        return probs[..., self.target]

    @property
    def original_score(self) -> Tensor:
        """``(B,)`` target before editing."""
        return self._score(self.original_probs)

    @property
    def ablated_score(self) -> Tensor:
        """``(B, N)`` target after each edit."""
        return self._score(self.ablated_probs)

    @property
    def effect(self) -> Tensor:
        """``(B, N)`` how much each erased piece of evidence raised the target."""
        return self.original_score[:, None] - self.ablated_score

    def ranking(self, sample: int = 0) -> list[tuple[str, float]]:
        """``(name, effect)`` of one image, largest first (``"all"`` left out)."""
        pairs = zip(self.names, self.effect[sample].tolist(), strict=True)
        return sorted(
            ((n, e) for n, e in pairs if n != ALL), key=lambda pair: pair[1], reverse=True
        )

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per image and edit, with the grade probabilities after it."""
        rows = []
        for b in range(self.ablated_probs.shape[0]):
            for n, name in enumerate(self.names):
                row: dict[str, Any] = {
                    "sample": b,
                    "erased": name,
                    "method": self.method,
                    "score_before": float(self.original_score[b]),
                    "score_after": float(self.ablated_score[b, n]),
                    "effect": float(self.effect[b, n]),
                    "grade_before": int(self.original_probs[b].argmax()),
                    "grade_after": int(self.ablated_probs[b, n].argmax()),
                }
                for g, p in enumerate(self.ablated_probs[b, n].tolist()):
                    row[f"p{g}_after"] = p
                rows.append(row)
        return rows

    def to_frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())


def _channels(lesions: Sequence[str], names: Sequence[str]) -> list[int]:
    unknown = [name for name in names if name not in lesions]
    if unknown:
        raise ValueError(f"unknown lesion(s) {unknown}; choose from {list(lesions)}")
    return [list(lesions).index(name) for name in names]


def regrade_edits(
    model: nn.Module, evidence: LesionEvidence, edited: Tensor, chunk: int = 64
) -> Tensor:
    """Grade probabilities of edited maps ``(B, N, L, H, W)`` -> ``(B, N, G)``.

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.
        edited: ``N`` edited versions of each image's maps.
        chunk: Edits per head pass (bounds memory for many instances).
    """
    batch, count = edited.shape[:2]
    probs = []
    with torch.no_grad():
        for b in range(batch):
            one = evidence.select(b)
            for start in range(0, count, chunk):
                part = edited[b, start : start + chunk]
                logits, _ = regrade(model, one, part, repeats=len(part))
                probs.append(grade_probabilities(logits, evidence.grade_output))  # type: ignore[arg-type]
    return torch.cat(probs).view(batch, count, -1)


def ablate_lesion_maps(
    model: nn.Module,
    evidence: LesionEvidence,
    lesions: Sequence[str] | None = None,
    target: Target = "expected_grade",
    include_all: bool = True,
) -> Ablation:
    """Erase each lesion type's map (set it to 0) and re-grade.

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.
        lesions: Lesion types to erase one at a time (default: all).
        target: What ``effect`` measures.
        include_all: Also erase every map at once (the "no lesion found" counterfactual).

    Returns:
        One edit per lesion type (plus ``"all"``).
    """
    names = list(evidence.lesions if lesions is None else lesions)
    channels = _channels(evidence.lesions, names)
    maps = evidence.lesion_probs
    edits = []
    for channel in channels:
        edit = maps.clone()
        edit[:, channel] = 0.0
        edits.append(edit)
    if include_all:
        edits.append(torch.zeros_like(maps))
        names.append(ALL)
    after = regrade_edits(model, evidence, torch.stack(edits, dim=1))
    return Ablation(tuple(names), evidence.grade_probs, after, target, "lesion_map")


@dataclass
class AblationCurves:
    """Grade response to scaling each lesion map from 1 (as found) down to 0 (erased).

    Attributes:
        scales: ``(S,)`` factors the map was multiplied by.
        probs: ``(B, L, S, G)`` grade probabilities at each scale.
        target: What :attr:`scores` measures.
        lesions: Lesion names in channel order.
    """

    scales: Tensor
    probs: Tensor
    target: Target
    lesions: tuple[str, ...] = LESIONS

    @property
    def scores(self) -> Tensor:
        """``(B, L, S)`` target at each scale."""
        if self.target == "expected_grade":
            return expected_grade(self.probs)
        return self.probs[..., self.target]


def ablation_curves(
    model: nn.Module,
    evidence: LesionEvidence,
    scales: Sequence[float] | Tensor | None = None,
    target: Target = "expected_grade",
) -> AblationCurves:
    """Scale one lesion map at a time by each factor and re-grade (a dose-response curve).

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`~multitask_dr.attribution.core.encode`.
        scales: Factors in ``[0, 1]`` (default 11 steps from 1 to 0).
        target: What :attr:`AblationCurves.scores` measures.

    Returns:
        The curves of every lesion type.
    """
    scales = torch.as_tensor(
        np.linspace(1.0, 0.0, 11) if scales is None else scales, dtype=torch.float32
    )
    maps = evidence.lesion_probs
    lesions = len(evidence.lesions)
    edits = maps[:, None, None].repeat(1, lesions, len(scales), 1, 1, 1)  # (B, L, S, L, H, W)
    for channel in range(lesions):
        edits[:, channel, :, channel] *= scales.view(1, -1, 1, 1).to(maps.device)
    flat = edits.flatten(1, 2)
    probs = regrade_edits(model, evidence, flat).view(len(maps), lesions, len(scales), -1)
    return AblationCurves(scales, probs.cpu(), target, evidence.lesions)


def inpaint(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """Paint ``mask`` over from its surroundings (``cv2.inpaint``, Telea's method).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, the pixels to replace.
        radius: Neighbourhood radius the fill is drawn from.

    Returns:
        A new uint8 image; pixels outside ``mask`` are unchanged.
    """
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    mask_u8 = np.ascontiguousarray(mask, dtype=np.uint8)
    if not mask_u8.any():
        return image.copy()
    return cv2.inpaint(np.ascontiguousarray(image), mask_u8, radius, cv2.INPAINT_TELEA)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float, as the datamodules normalise."""
    array = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate a bool mask by ``pixels`` (8-connected), so a lesion's soft rim goes too."""
    if pixels <= 0:
        return mask.astype(bool)
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def ablate_by_inpainting(
    model: nn.Module,
    image: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    masks: np.ndarray | None = None,
    lesions: Sequence[str] | None = None,
    threshold: float = 0.5,
    dilate: int = 1,
    radius: int = 3,
    target: Target = "expected_grade",
    include_all: bool = True,
) -> tuple[Ablation, dict[str, np.ndarray]]:
    """Inpaint each lesion type's pixels out of the image and re-run the whole model.

    Args:
        model: A :class:`~multitask_dr.models.network.MultiTaskNet` or a task holding one.
        image: ``(H, W, 3)`` uint8 RGB at the model's input size (e.g. ``TJDRDataset.load``).
        mean: Normalisation mean in ``[0, 1]`` (the datamodule's ``mean``).
        std: Normalisation std in ``[0, 1]``.
        masks: ``(H, W, L)`` regions to erase per lesion type (e.g. ground truth); ``None``:
            the model's own maps above ``threshold``.
        lesions: Lesion types to erase one at a time (default: every type with pixels to erase).
        threshold: Probability above which a predicted pixel is erased.
        dilate: Grow each region by this many pixels before inpainting.
        radius: ``cv2.inpaint`` radius.
        target: What ``effect`` measures.
        include_all: Also erase every lesion type at once.

    Returns:
        The ablation (batch of one) and the inpainted images by name.
    """
    net = as_network(model)
    original = normalize(image, mean, std).to(next(net.parameters()).device)
    evidence = encode(net, original)
    if masks is None:
        masks = (evidence.lesion_probs[0] > threshold).permute(1, 2, 0).cpu().numpy()
    masks = np.asarray(masks).astype(bool)
    if masks.shape != (*image.shape[:2], len(evidence.lesions)):
        raise ValueError(f"masks must be (H, W, {len(evidence.lesions)}), got {masks.shape}")
    if lesions is None:
        names = [n for c, n in enumerate(evidence.lesions) if masks[..., c].any()]
    else:
        names = list(lesions)
    regions = {
        name: grow(masks[..., c], dilate)
        for name, c in zip(names, _channels(evidence.lesions, names), strict=True)
    }
    if include_all:
        regions[ALL] = grow(masks.any(axis=-1), dilate)
    painted = {name: inpaint(image, region, radius) for name, region in regions.items()}
    probs = []
    with torch.no_grad(), eval_mode(net):
        for edited in painted.values():
            out = net(normalize(edited, mean, std).to(original.device))
            probs.append(grade_probabilities(out["grade_logits"], evidence.grade_output))  # type: ignore[arg-type]
    after = (
        torch.cat(probs)[None]
        if probs
        else evidence.grade_probs.new_zeros(1, 0, evidence.grade_probs.shape[1])
    )
    ablation = Ablation(tuple(painted), evidence.grade_probs, after, target, "inpainting")
    return ablation, painted


__all__ = [
    "ALL",
    "Ablation",
    "AblationCurves",
    "ablate_by_inpainting",
    "ablate_lesion_maps",
    "ablation_curves",
    "grow",
    "inpaint",
    "normalize",
    "regrade_edits",
]
