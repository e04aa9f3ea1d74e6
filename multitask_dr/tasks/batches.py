"""What the task's batches hold, and which source a batch (or dataloader) comes from.

A batch is a dict with ``image`` and whichever labels its source has: ``mask`` (lesion maps,
``255`` = not scored) and/or ``grade`` (``-1`` = unknown). A training batch from
:class:`~multitask_dr.datamodules.joint.JointDataModule` is a dict of such batches, one per
source; each source is run through the network at its own resolution and the losses are summed.
"""

from __future__ import annotations

from typing import Any

from lightning import Trainer


def split_sources(batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{source: batch}`` for a joint batch, ``{"batch": batch}`` for a single-source one."""
    if "image" in batch:
        return {"batch": batch}
    return {name: part for name, part in batch.items() if part is not None}


def lesion_source(trainer: Trainer | None, dataloader_idx: int) -> str | None:
    """The lesion source an evaluation dataloader reads, when several are scored apart.

    A datamodule with several lesion sources names them in ``lesion_sources`` (in the order
    of its evaluation dataloaders); each then gets its own lesion scores besides the pooled
    ones, e.g. ``test/seg/heimed/aupr_EX``.

    Args:
        trainer: The trainer running the evaluation (``None``: a task used without one).
        dataloader_idx: The evaluation dataloader's index.

    Returns:
        The source's name, or ``None`` when lesions are scored pooled only.
    """
    datamodule = trainer.datamodule if trainer is not None else None
    sources = getattr(datamodule, "lesion_sources", None) or []
    if len(sources) < 2 or dataloader_idx >= len(sources):
        return None
    return sources[dataloader_idx]
