"""PNG renderings of the evaluation media: lesion panel, confusion matrix, PR curves.

Matplotlib is imported when a figure is drawn, not with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from multitask_dr.lesions import IGNORE_INDEX, LESION_NAMES, LESIONS, lesion_colour
from multitask_dr.predict import overlay, release_index_mask

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_figure(matrix: np.ndarray, title: str = "Grading confusion") -> Figure:
    """Counts per (true, predicted) grade, annotated."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(matrix))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted grade", ylabel="true grade", title=title)
    top = matrix.max() if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if top and count > top / 2 else "black"
        ax.text(col, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=9)
    return fig


def pr_figure(precision: list[np.ndarray], recall: list[np.ndarray]) -> Figure:
    """One precision-recall curve per lesion."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    for c, lesion in enumerate(LESIONS):
        colour = np.array(lesion_colour(lesion)) * 0.8
        ax.plot(recall[c], precision[c], color=colour, label=f"{lesion} ({LESION_NAMES[lesion]})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title("Lesion precision-recall (pixels)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def scored_lesions(mask: Tensor) -> list[bool]:
    """Which lesion channels of one ``(L, H, W)`` mask are annotated (not all unscored).

    A source that does not annotate a lesion type marks that whole channel
    :data:`~multitask_dr.lesions.IGNORE_INDEX`; its true area is unknown, not zero.
    """
    return (mask != IGNORE_INDEX).flatten(1).any(dim=1).tolist()


def panel_figure(panel: list[dict[str, Any]], alpha: float = 0.45) -> Figure:
    """Rows of image | true lesions | predicted lesions, with the grades in the titles."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = len(panel)
    fig = Figure(figsize=(6.6, 2.2 * rows + 0.4), dpi=100, layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 3))
    for r, item in enumerate(panel):
        pred = release_index_mask(item["pred"].astype(np.float32), 0.5)
        true_cell = (np.zeros_like(item["image"]), "no lesion labels")
        if item["true"] is not None and any(item["scored"]):
            true = release_index_mask(item["true"].astype(np.float32), 0.5)
            title = "true lesions"
            if not all(item["scored"]):
                named = [lesion for lesion, s in zip(LESIONS, item["scored"], strict=True) if s]
                title += f" ({', '.join(named)} only annotated)"
            true_cell = (overlay(item["image"], true, alpha, None), title)
        cells = [
            (item["image"], item["caption"]),
            true_cell,
            (overlay(item["image"], pred, alpha, None), "predicted lesions"),
        ]
        for ax, (image, title) in zip(axes[r], cells, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    handles = [Patch(color=lesion_colour(k), label=k) for k in LESIONS]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(LESIONS), fontsize=8)
    return fig


def render(fig: Figure) -> np.ndarray:
    """A matplotlib figure as an ``(H, W, 3)`` uint8 array (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
