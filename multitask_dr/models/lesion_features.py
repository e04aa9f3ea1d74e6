"""Lesion statistics computed from predicted lesion probability maps.

These are the quantities a grader reads off a fundus photo: how much of each lesion there is,
how many separate lesions, how sure the model is, and where they are (the ICDR severe grade
needs haemorrhages in all four quadrants).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Names of the per-lesion features, in the order :class:`LesionFeatures` returns them.
FEATURE_NAMES: tuple[str, ...] = (
    "log_area",
    "log_count",
    "peak",
    "quadrant_spread",
    "quadrant_sup_temporal",
    "quadrant_sup_nasal",
    "quadrant_inf_nasal",
    "quadrant_inf_temporal",
)


class LesionFeatures(nn.Module):
    """Per-lesion statistics from ``(B, L, H, W)`` lesion probabilities.

    For each lesion channel: log area fraction, log(1 + soft blob count), peak probability,
    soft number of quadrants containing the lesion and the peak probability in each quadrant.
    Blobs are counted as local maxima above ``threshold`` within a ``peak_window`` neighbourhood,
    weighted by their probability (a soft count that tracks connected components for compact
    lesions). Quadrants are taken around the image centre (images are FOV-centred).

    Args:
        threshold: Probability above which a local maximum counts as a lesion.
        peak_window: Odd neighbourhood size for local maxima, in pixels.
    """

    num_features = len(FEATURE_NAMES)

    def __init__(self, threshold: float = 0.5, peak_window: int = 5) -> None:
        super().__init__()
        self.threshold = threshold
        self.peak_window = peak_window

    def forward(self, probs: Tensor) -> Tensor:
        """Compute ``(B, L, F)`` features from ``(B, L, H, W)`` probabilities in [0, 1]."""
        batch, lesions, height, width = probs.shape
        area = probs.mean(dim=(2, 3))
        pooled = F.max_pool2d(probs, self.peak_window, stride=1, padding=self.peak_window // 2)
        is_peak = (probs >= pooled) & (probs > self.threshold)
        count = (probs * is_peak).sum(dim=(2, 3))
        peak = probs.amax(dim=(2, 3))
        h2, w2 = height // 2, width // 2
        # Quadrants in image orientation; which is temporal/nasal depends on the eye, the
        # names follow a right eye and only the spread matters for the grade rule.
        quadrants = torch.stack(
            [
                probs[..., :h2, :w2].amax(dim=(2, 3)),
                probs[..., :h2, w2:].amax(dim=(2, 3)),
                probs[..., h2:, w2:].amax(dim=(2, 3)),
                probs[..., h2:, :w2].amax(dim=(2, 3)),
            ],
            dim=-1,
        )
        spread = torch.sigmoid((quadrants - self.threshold) * 20).sum(dim=-1)
        features = torch.stack([torch.log(area + 1e-4), torch.log1p(count), peak, spread], dim=-1)
        return torch.cat([features, quadrants], dim=-1).reshape(batch, lesions, -1)
