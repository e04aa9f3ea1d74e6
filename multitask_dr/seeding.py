"""Training randomness keyed by position, so a resumed ``fit`` replays the straight run exactly.

A generator created once and drawn from as training goes cannot be rebuilt from a checkpoint:
a resumed run would start it afresh and replay epoch 0's order and augmentations. Here every
random draw of training is a pure function of the seed and of where training is:

- **Order**: :class:`PassSampler` draws each pass over a training loader (an epoch, or one
  more cycle of the shorter source of a joint epoch) from ``(seed, pass number)``. The
  datamodule keeps the pass number in its :class:`PassCounter` and saves it in checkpoints.
- **Augmentation**: the sampler hands each draw its own seed with its index;
  :class:`SeededSamples` reseeds the sample's transform with it. The stream is then the same
  whatever the number of workers and wherever a worker stands in it.
- **Model** (dropout, mixing, teacher forcing): :class:`StepSeed` reseeds torch before each
  training batch from ``(seed, global step, batch index, rank)``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from torch.utils.data import Dataset, DistributedSampler


def stream_seed(*keys: int) -> int:
    """A 32-bit seed determined by ``keys`` alone (``SeedSequence`` mixes them thoroughly)."""
    return int(np.random.SeedSequence([int(k) % 2**63 for k in keys]).generate_state(1)[0])


class PassCounter:
    """How many passes a datamodule's training loaders have started (saved in checkpoints)."""

    def __init__(self) -> None:
        self.value = 0

    def take(self) -> int:
        """The number of the pass that starts now."""
        self.value += 1
        return self.value - 1


class PassSampler(DistributedSampler):
    """Training order and per-draw augmentation seeds, from ``(seed, pass)`` only.

    Yields ``(index, seed)`` pairs for :class:`SeededSamples`. Each pass is a fresh
    permutation of the dataset, or, with ``weights``, ``len(weights)`` draws with replacement
    in proportion to them. Under DDP each rank takes every ``num_replicas``-th draw of the same
    pass (padded by repeating its start, as ``DistributedSampler`` does). Being a
    ``DistributedSampler`` keeps Lightning from wrapping it in one of its own, whose order
    would follow its own generator.

    Args:
        size: Dataset length.
        seed: The datamodule's seed.
        counter: Shared pass counter (its value is what a checkpoint restores).
        weights: Sampling weights (``None``: a permutation).
        num_replicas: Number of processes.
        rank: This process's rank.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        counter: PassCounter,
        weights: Sequence[float] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler.__init__ would ask torch.distributed for the world: set it here.
        self.size = size
        self.seed = seed
        self.counter = counter
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = True
        self.drop_last = False
        self.epoch = 0
        self.num_samples = math.ceil(size / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Recorded for Lightning; the order follows the pass counter, not this number.

        Lightning calls it after it has already started the first pass of a resumed run.
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pass_number = self.counter.take()
        rng = np.random.default_rng(stream_seed(self.seed, pass_number))
        if self.weights is None:
            order = rng.permutation(self.size)
        else:
            p = self.weights / self.weights.sum()
            order = rng.choice(self.size, self.size, replace=True, p=p)
        seeds = rng.integers(0, 2**32, size=self.size, dtype=np.uint64)
        if self.total_size > self.size:
            pad = self.total_size - self.size
            order = np.concatenate([order, np.resize(order, pad)])
            seeds = np.concatenate([seeds, np.resize(seeds, pad)])
        picked = slice(self.rank, self.total_size, self.num_replicas)
        return iter(list(zip(order[picked].tolist(), seeds[picked].tolist(), strict=True)))


def find_transform(dataset: Any) -> Any:
    """The transform of a dataset, looking through wrappers (``Subset``, ``Repeat``, ...)."""
    while not hasattr(dataset, "transform") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return getattr(dataset, "transform", None)


class SeededSamples(Dataset):
    """A dataset whose samples are drawn with the augmentation seed the sampler gives.

    ``dataset[(index, seed)]`` reseeds the transform (anything with ``set_random_seed``) and
    returns ``dataset[index]``; a plain index reads the sample as it is.

    Args:
        dataset: The wrapped dataset (or a wrapper around it, e.g. ``Repeat``).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            index, seed = key
            transform = find_transform(self.dataset)
            if hasattr(transform, "set_random_seed"):
                transform.set_random_seed(seed)
            return self.dataset[index]
        return self.dataset[key]


class StepSeed(Callback):
    """Reseed torch before each training batch from the seed and the step.

    Lightning restores weights, optimiser and loop counters but not torch's random state, so a
    resumed run would otherwise draw other dropout masks than the straight run. The seed is
    ``seed_everything``'s (``PL_GLOBAL_SEED``), or a fresh one when training is unseeded; it is
    kept in checkpoints so a resumed run continues the same stream.
    """

    def __init__(self) -> None:
        self.seed: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Fix the base seed (a checkpoint's, loaded after this, replaces it)."""
        if self.seed is None:
            env = os.environ.get("PL_GLOBAL_SEED")
            self.seed = int(env) if env is not None else random.SystemRandom().getrandbits(32)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Seed this batch's draws."""
        assert self.seed is not None
        step = (trainer.global_step, batch_idx, trainer.global_rank)
        torch.manual_seed(stream_seed(self.seed, *step))

    def state_dict(self) -> dict[str, Any]:
        """The base seed."""
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the checkpoint's stream."""
        self.seed = state_dict.get("seed", self.seed)
