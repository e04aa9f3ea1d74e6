"""Shared plumbing of the attribution methods: one encoder pass, re-grading, grade targets.

Every method answers "how much did the lesion evidence move the grade?" by editing the lesion
probability maps the grade head reads and re-running only the head
(:meth:`~multitask_dr.models.network.MultiTaskNet.grade_from_lesions`). :func:`encode` runs the
encoder (and, unless maps are given, the lesion decoder) once and keeps what the head needs.

Targets: a method measures either the **expected grade** ``sum_g g * P(grade = g)`` (in grade
units, so "this haemorrhage raised the expected grade by 0.8" reads directly) or the probability
of one grade ``k`` (``target=k``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch
from torch import Tensor, nn

from multitask_dr.lesions import LESIONS
from multitask_dr.models.network import MultiTaskNet
from multitask_dr.models.ordinal import expected_grade, grade_probabilities

#: ``"expected_grade"`` or the index of one grade (its probability is the target).
Target: TypeAlias = Literal["expected_grade"] | int


def as_network(model: nn.Module) -> MultiTaskNet:
    """The :class:`MultiTaskNet` of a task (``MultiTaskDR.net``) or the network itself.

    Raises:
        TypeError: When ``model`` is neither.
    """
    net = getattr(model, "net", model)
    if not isinstance(net, MultiTaskNet):
        raise TypeError(f"expected a MultiTaskNet or a task holding one, got {type(model)}")
    return net


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run with dropout off (attributions must be deterministic), then restore the mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def grade_score(logits: Tensor, grade_output: str, target: Target) -> Tensor:
    """The scalar an attribution explains, per sample.

    Args:
        logits: Grade head output ``(B, G)`` (softmax) or ``(B, G - 1)`` (coral).
        grade_output: ``softmax`` or ``coral``.
        target: ``"expected_grade"`` or a grade index ``k`` (then ``P(grade = k)``).

    Returns:
        ``(B,)`` scores.
    """
    probs = grade_probabilities(logits, grade_output)  # type: ignore[arg-type]
    if target == "expected_grade":
        return expected_grade(probs)
    if not isinstance(target, int) or not 0 <= target < probs.shape[1]:
        raise ValueError(f"target must be 'expected_grade' or a grade 0-{probs.shape[1] - 1}")
    return probs[:, target]


@dataclass
class LesionEvidence:
    """What the grade head saw for a batch of images, computed once.

    Attributes:
        features: Encoder feature maps (detached); the grade head reads the deepest.
        lesion_probs: ``(B, L, H, W)`` lesion maps the grade was computed from (the model's own
            predictions, or maps given to :func:`encode`, e.g. ground truth).
        grade_logits: Grade head output for those maps.
        grade_probs: ``(B, G)`` grade probabilities.
        contributions: ``(B, L, ·)`` per-lesion logit contributions (``bottleneck`` head only).
        grade_output: ``softmax`` or ``coral``.
        lesions: Lesion names in channel order.
    """

    features: list[Tensor]
    lesion_probs: Tensor
    grade_logits: Tensor
    grade_probs: Tensor
    contributions: Tensor | None
    grade_output: str
    lesions: tuple[str, ...] = LESIONS

    @property
    def batch_size(self) -> int:
        """Number of images."""
        return self.lesion_probs.shape[0]

    @property
    def predicted_grade(self) -> Tensor:
        """``(B,)`` most probable grade."""
        return self.grade_probs.argmax(dim=1)

    def select(self, index: int) -> LesionEvidence:
        """The evidence of one image, as a batch of one."""
        part = slice(index, index + 1)
        return LesionEvidence(
            [f[part] for f in self.features],
            self.lesion_probs[part],
            self.grade_logits[part],
            self.grade_probs[part],
            None if self.contributions is None else self.contributions[part],
            self.grade_output,
            self.lesions,
        )


def encode(model: nn.Module, image: Tensor, lesion_probs: Tensor | None = None) -> LesionEvidence:
    """Run the encoder once (and the lesion decoder unless maps are given) and grade.

    Args:
        model: A :class:`MultiTaskNet` or a task holding one (``.net``).
        image: ``(B, 3, H, W)`` normalised images.
        lesion_probs: Optional ``(B, L, H, W)`` maps in ``[0, 1]`` to grade from instead of the
            model's own (ground-truth masks, hand-edited maps).

    Returns:
        The evidence every attribution method starts from.
    """
    net = as_network(model)
    with torch.no_grad(), eval_mode(net):
        features = [f.detach() for f in net.encoder(image)]
        if lesion_probs is None:
            lesion_probs = torch.sigmoid(net.segmentation_head(net.decoder(features)))
        else:
            lesion_probs = lesion_probs.detach().to(image.device, torch.float32, copy=True)
            # Any resolution works (the head pools the maps), but one map per lesion and image.
            if lesion_probs.ndim != 4 or lesion_probs.shape[:2] != (len(image), len(LESIONS)):
                raise ValueError(
                    f"lesion_probs must be ({len(image)}, {len(LESIONS)}, H, W), "
                    f"got {tuple(lesion_probs.shape)}"
                )
        logits, contributions = net.grade_from_lesions(features, lesion_probs)
    output = net.grade_head.grade_output
    return LesionEvidence(
        features,
        lesion_probs,
        logits,
        grade_probabilities(logits, output),
        contributions,
        output,
    )


def regrade(
    model: nn.Module, evidence: LesionEvidence, probs: Tensor, repeats: int = 1
) -> tuple[Tensor, Tensor | None]:
    """Grade logits (and contributions) for edited lesion maps, without the encoder.

    Args:
        model: The network (or task) that produced ``evidence``.
        evidence: From :func:`encode`.
        probs: ``(B * repeats, L, H, W)`` edited maps, image-major: rows ``b * repeats + r`` are
            edits of image ``b``.
        repeats: Edits per image.

    Returns:
        Grade logits and contributions of the edited maps (gradients flow into ``probs``).
    """
    net = as_network(model)
    deep = evidence.features[-1]
    if repeats > 1:
        deep = deep.repeat_interleave(repeats, dim=0)
    with eval_mode(net):
        # The grade head reads only the deepest feature map, so only that one is repeated.
        return net.grade_from_lesions([deep], probs)
