"""Shared DataLoader plumbing: seeded shuffling, per-worker augmentation seeds."""

from __future__ import annotations

from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from multitask_dr.datamodules.transforms import seed_worker


class SeededDataModule(LightningDataModule):
    """Base for datamodules whose splits, shuffling and augmentation follow one seed.

    Args:
        batch_size: Training batch size.
        eval_batch_size: Validation/test/predict batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes (0 = load in the main process).
        seed: Fixes the train/val split, the shuffling order and the augmentation stream.
    """

    def __init__(
        self, batch_size: int, eval_batch_size: int | None, num_workers: int, seed: int
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed

    def loader(
        self, dataset: Dataset, train: bool, sampler: Sampler | None = None
    ) -> DataLoader[dict[str, Any]]:
        """A DataLoader that shuffles (when training) by the datamodule's seed."""
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )
