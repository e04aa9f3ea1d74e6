"""Sliding-window lesion inference with overlap blending, for full-resolution evaluation.

Training runs on patches; evaluating a 1024² TJDR image in one pass would change the receptive
field statistics and memory. Windows of ``window``² are run with ``overlap`` and blended with a
separable tent weight that is highest in a window's centre, so window borders (where the
network sees the least context) count least and no seam shows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``window`` every ``stride``."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)  # the last window ends exactly at the border
    return starts


def tent_weight(window: int, device: torch.device) -> Tensor:
    """``(window, window)`` blending weight, 1 at the centre falling linearly towards the edges."""
    ramp = torch.minimum(
        torch.arange(window, device=device) + 1, torch.arange(window, 0, -1, device=device)
    )
    ramp = ramp.float() / ramp.max()
    return ramp[:, None] * ramp[None, :]


@torch.no_grad()
def sliding_window(
    predict: Callable[[Tensor], Tensor], image: Tensor, window: int, overlap: float = 0.25
) -> Tensor:
    """Run ``predict`` over overlapping windows of ``image`` and blend the outputs.

    Args:
        predict: Maps ``(B, C, window, window)`` to ``(B, K, window, window)``.
        image: ``(B, C, H, W)``; images no larger than ``window`` run in one pass.
        window: Window side length.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.

    Returns:
        ``(B, K, H, W)`` blended outputs.
    """
    height, width = image.shape[-2:]
    if height <= window and width <= window:
        return predict(image)
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = max(int(window * (1 - overlap)), 1)
    weight = tent_weight(window, image.device)
    total: Tensor | None = None
    norm = torch.zeros(height, width, device=image.device)
    for top in window_starts(height, window, stride):
        for left in window_starts(width, window, stride):
            out = predict(image[..., top : top + window, left : left + window])
            if total is None:
                total = out.new_zeros(*out.shape[:2], height, width)
            total[..., top : top + window, left : left + window] += out * weight
            norm[top : top + window, left : left + window] += weight
    assert total is not None
    return total / norm
