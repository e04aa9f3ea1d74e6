"""The task's optimiser: AdamW (encoder and the rest apart) with warm-up and cosine decay."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def warmup_cosine_adamw(
    encoder: nn.Module,
    model: nn.Module,
    lr: float,
    encoder_lr: float | None,
    weight_decay: float,
    epochs: int,
    warmup_epochs: int,
) -> dict[str, Any]:
    """AdamW with linear warm-up then cosine decay, stepped per epoch (Lightning's format).

    Args:
        encoder: The pretrained part, whose parameters get ``encoder_lr``.
        model: The whole model; its other parameters get ``lr``.
        lr: Peak learning rate.
        encoder_lr: Peak learning rate of the encoder (``None``: ``lr``).
        weight_decay: AdamW weight decay.
        epochs: Epochs the schedule spans.
        warmup_epochs: Linear warm-up epochs (at most ``epochs - 1``).
    """
    params = list(encoder.parameters())
    encoder_ids = {id(p) for p in params}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    groups = [
        {"params": params, "lr": lr if encoder_lr is None else encoder_lr},
        {"params": rest, "lr": lr},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    epochs = max(epochs, 1)
    warmup = min(warmup_epochs, epochs - 1)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(epochs - warmup, 1)
        return 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
