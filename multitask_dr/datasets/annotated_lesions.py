"""Which lesion types a source annotates, and unscoring the channels of the others."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from multitask_dr.lesions import (
    IGNORE_INDEX,
    LESIONS,
)

MaskT = TypeVar("MaskT", np.ndarray, torch.Tensor)


def check_lesions(lesions: Sequence[str] | None) -> tuple[str, ...]:
    """The lesion types a source annotates, checked (``None``: all of them).

    Raises:
        ValueError: On a name outside :data:`~multitask_dr.lesions.LESIONS`, or none at all.
    """
    if lesions is None:
        return LESIONS
    chosen = tuple(str(lesion).strip().upper() for lesion in lesions)
    unknown = [lesion for lesion in chosen if lesion not in LESIONS]
    if unknown or not chosen:
        raise ValueError(f"annotated_lesions must name some of {LESIONS}, got {list(lesions)}")
    return tuple(lesion for lesion in LESIONS if lesion in chosen)


def unscore_unannotated(mask: MaskT, annotated: Sequence[str], channel_axis: int = -1) -> MaskT:
    """Mark the channels of lesion types a source does not annotate as unscored.

    A source that outlines only exudates says nothing about haemorrhages: their channel is
    :data:`~multitask_dr.lesions.IGNORE_INDEX` everywhere (no loss, no metric, no lesion-centred
    patch, no true overlay), never background.

    Args:
        mask: ``(H, W, L)`` array, or ``(L, H, W)`` tensor with ``channel_axis=0``.
        annotated: Lesion names the source annotates.
        channel_axis: Where the lesion channels are.

    Returns:
        The mask (a copy when a channel changed).
    """
    missing = [c for c, lesion in enumerate(LESIONS) if lesion not in annotated]
    if not missing:
        return mask
    mask = mask.copy() if isinstance(mask, np.ndarray) else mask.clone()
    index = [slice(None)] * mask.ndim
    index[channel_axis] = missing
    mask[tuple(index)] = IGNORE_INDEX
    return mask
