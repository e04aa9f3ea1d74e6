"""Sanity checks for attributions (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

- **Model randomisation**: an attribution that barely changes when the grade head's trained
  weights are replaced by random ones explains the input, not the model.
  :func:`randomized_copy` re-initialises chosen sub-modules; compare attributions with
  :func:`rank_correlation`.
- **Known rule**: on synthetic phantoms the grade follows a documented lesion rule
  (:mod:`multitask_dr.datasets.synthetic.grade`), so the top-ranked lesion type can be
  checked against :attr:`~multitask_dr.datasets.synthetic.grade.Phantom.deciding_lesion`
  wherever that lesion is *necessary* (erasing it changes the rule's grade; see
  :func:`deciding_lesion_is_necessary`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from multitask_dr.attribution.core import as_network
from multitask_dr.datasets.synthetic.grade import Phantom, grade_from_lesions


def randomized_copy(
    model: nn.Module, modules: Sequence[str] = ("grade_head",), seed: int = 0, std: float = 0.05
) -> nn.Module:
    """A copy of the network with the named sub-modules re-initialised at random.

    Layers with ``reset_parameters`` (Linear, Conv, LayerNorm, ...) get their own
    initialisation; other parameters (the bottleneck's per-lesion weights and bias, CORAL
    biases) are drawn from ``N(0, std)``.

    Args:
        model: A :class:`~multitask_dr.models.network.MultiTaskNet` or a task holding one.
        modules: Attribute names of the network's sub-modules to randomise (cascading
            randomisation: add ``"segmentation_head"``, ``"decoder"``, ...).
        seed: Seed of the new weights.
        std: Standard deviation for parameters without an initialiser.

    Returns:
        The randomised copy of the network (the original is untouched).
    """
    net = copy.deepcopy(as_network(model))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # reset_parameters() draws from the global generator
    for name in modules:
        for module in net.get_submodule(name).modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for param in module.parameters(recurse=False):
                with torch.no_grad():
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
    return net


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank (as Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ordered)) + 1])
    ends = np.concatenate([starts[1:], [len(values)]])
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def rank_correlation(a: Tensor, b: Tensor, where: Tensor | None = None) -> float:
    """Spearman rank correlation of two attributions (ties get their average rank).

    Args:
        a: Attribution, any shape.
        b: Attribution of the same shape.
        where: Optional bool mask of the entries to compare. Pixel attributions on lesion maps
            are exactly 0 wherever the map is 0, under any model; those shared zeros (one big
            tie) add agreement that says nothing about the model, so pass ``maps > threshold``
            to compare the lesion pixels only.

    Returns:
        The coefficient in ``[-1, 1]`` (NaN when either side is constant).
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    x = a.detach().cpu().double().numpy()
    y = b.detach().cpu().double().numpy()
    if where is not None:
        keep = where.detach().cpu().numpy().astype(bool)
        x, y = x[keep], y[keep]
    rx, ry = _ranks(x.ravel()), _ranks(y.ravel())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.linalg.norm(rx) * np.linalg.norm(ry))
    return float(rx @ ry / denominator) if denominator > 0 else float("nan")


def deciding_lesion_is_necessary(phantom: Phantom) -> bool:
    """Whether erasing every instance of the deciding lesion type changes the rule's grade.

    Where it does not (e.g. a grade-2 eye with both haemorrhages and exudates: either alone
    keeps grade 2), no counterfactual attribution can single out the "deciding" type, so a
    sanity check must skip the eye.
    """
    if phantom.deciding_lesion is None:
        return False
    kept = [lesion for lesion in phantom.lesions if lesion.kind != phantom.deciding_lesion]
    return grade_from_lesions(kept, phantom.fov)[0] != phantom.grade
