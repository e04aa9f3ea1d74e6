"""Matplotlib figures for attributions (used by the notebooks; every function takes ``ax``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from multitask_dr.attribution.ablation import AblationCurves
from multitask_dr.attribution.instances import InstanceAttribution
from multitask_dr.lesions import LESIONS, lesion_colour

#: The project's lesion colours (:data:`~multitask_dr.lesions.LESION_COLOURS`) as RGB in
#: ``[0, 1]``, in channel order: MA, HE, EX, SE.
LESION_COLOURS: tuple[tuple[float, float, float], ...] = tuple(
    lesion_colour(lesion) for lesion in LESIONS
)


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def lesion_overlay(image: np.ndarray, probs: Tensor | np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend each lesion map over the image in its colour.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        probs: ``(L, H, W)`` probabilities (or 0/1 masks) at the image's size.
        alpha: Opacity of a probability-1 pixel.

    Returns:
        ``(H, W, 3)`` float RGB in ``[0, 1]``.
    """
    maps = probs.detach().cpu().numpy() if isinstance(probs, Tensor) else np.asarray(probs)
    out = image.astype(np.float32) / 255.0
    for channel in range(maps.shape[0]):
        weight = alpha * np.clip(maps[channel], 0.0, 1.0)[..., None]
        out = out * (1 - weight) + weight * np.asarray(LESION_COLOURS[channel])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def plot_overlay(
    image: np.ndarray,
    probs: Tensor | np.ndarray,
    title: str = "",
    ax: Any = None,
    lesions: Sequence[str] = LESIONS,
) -> Any:
    """Image with lesion maps overlaid and a colour legend."""
    from matplotlib.patches import Patch

    ax = _axes(ax)
    ax.imshow(lesion_overlay(image, probs))
    handles = [Patch(color=LESION_COLOURS[c], label=n) for c, n in enumerate(lesions)]
    ax.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.6)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax


def plot_contributions(
    values: Sequence[tuple[str, float]] | dict[str, float],
    title: str = "",
    xlabel: str = "contribution",
    ax: Any = None,
) -> Any:
    """Horizontal bar chart of per-lesion (or per-instance) values, coloured by lesion type."""
    ax = _axes(ax)
    pairs = list(values.items()) if isinstance(values, dict) else list(values)
    names = [name for name, _ in pairs]
    colours = [
        LESION_COLOURS[LESIONS.index(name.split("#")[0])]
        if name.split("#")[0] in LESIONS
        else (0.5, 0.5, 0.5)
        for name in names
    ]
    ax.barh(range(len(pairs)), [value for _, value in pairs], color=colours)
    ax.set_yticks(range(len(pairs)), names)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    return ax


def plot_ablation_curves(
    curves: AblationCurves, sample: int = 0, title: str = "", ax: Any = None
) -> Any:
    """Target (expected grade by default) as each lesion map is scaled from 1 to 0."""
    ax = _axes(ax)
    scores = curves.scores[sample]
    for channel, lesion in enumerate(curves.lesions):
        ax.plot(
            curves.scales.numpy(),
            scores[channel].numpy(),
            marker="o",
            markersize=3,
            color=LESION_COLOURS[channel],
            label=lesion,
        )
    ax.invert_xaxis()
    ax.set_xlabel("lesion map scale (1 = as found, 0 = erased)")
    ax.set_ylabel("expected grade" if curves.target == "expected_grade" else "probability")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return ax


def plot_instances(
    image: np.ndarray, attribution: InstanceAttribution, top: int = 8, ax: Any = None
) -> Any:
    """Boxes around the ``top`` instances with the largest ``|effect|``, labelled with it."""
    from matplotlib.patches import Rectangle

    ax = _axes(ax)
    ax.imshow(image)
    ranked = sorted(
        zip(attribution.instances, attribution.effects, strict=True),
        key=lambda pair: -abs(pair[1]),
    )[:top]
    for instance, effect in ranked:
        x, y, w, h = instance.bbox
        colour = LESION_COLOURS[instance.channel]
        ax.add_patch(
            Rectangle((x - 1.5, y - 1.5), w + 2, h + 2, fill=False, edgecolor=colour, linewidth=1)
        )
        ax.text(x, y - 2, f"{instance.name} {effect:+.2f}", color=colour, fontsize=6)
    ax.axis("off")
    return ax
