"""The W&B charts and images of the evaluation media (``wandb`` is imported when one is made)."""

from __future__ import annotations

from typing import Any

import numpy as np

from multitask_dr.lesions import GRADE_NAMES, LESIONS

#: W&B mask class ids: one per lesion, shared by every overlay so colours agree.
CLASS_LABELS: dict[int, str] = {0: "background"} | {
    c + 1: lesion for c, lesion in enumerate(LESIONS)
}


def confusion_chart(matrix: np.ndarray, stage: str) -> Any:
    """Counts per (true, predicted) grade as W&B's confusion-matrix chart."""
    import wandb

    return wandb.plot_table(
        "wandb/confusion_matrix/v1",
        wandb.Table(
            columns=["Actual", "Predicted", "nPredictions"],
            data=[
                [GRADE_NAMES[t], GRADE_NAMES[p], int(matrix[t, p])]
                for t in range(len(matrix))
                for p in range(len(matrix))
            ],
        ),
        {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
        {"title": f"{stage} grading confusion"},
    )


def pr_chart(precision: list[np.ndarray], recall: list[np.ndarray], stage: str) -> Any:
    """Per-lesion precision-recall curves as a W&B line plot."""
    import wandb

    data = [
        [lesion, float(r), float(p)]
        for c, lesion in enumerate(LESIONS)
        for p, r in zip(precision[c], recall[c], strict=True)
    ]
    table = wandb.Table(columns=["lesion", "recall", "precision"], data=data)
    return wandb.plot.line(
        table, "recall", "precision", stroke="lesion", title=f"{stage} lesion PR curves"
    )


def wandb_image(item: dict[str, Any]) -> Any:
    """A panel item as a ``wandb.Image`` with one mask overlay per lesion (see the callback)."""
    import wandb

    masks = {}
    for kind in ("pred", "true"):
        if item[kind] is None:
            continue
        for c, lesion in enumerate(LESIONS):
            if kind == "true" and not item["scored"][c]:
                continue  # not annotated in this source: no overlay, rather than an empty one
            masks[f"{kind}_{lesion}"] = {
                "mask_data": item[kind][c].astype(np.uint8) * (c + 1),
                "class_labels": CLASS_LABELS,
            }
    return wandb.Image(item["image"], masks=masks, caption=item["caption"])
