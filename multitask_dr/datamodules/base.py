"""Shared DataLoader plumbing: resumable seeded order and augmentation, predict folders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from multitask_dr.datamodules.transforms import SampleTransform, seed_worker
from multitask_dr.datasets.folder import ImageFolderDataset
from multitask_dr.datasets.problems import DataError
from multitask_dr.seeding import PassCounter, PassSampler, SeededSamples


class SeededDataModule(LightningDataModule):
    """Base for datamodules whose splits, shuffling and augmentation follow one seed.

    Args:
        batch_size: Training batch size.
        eval_batch_size: Validation/test/predict batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes (0 = load in the main process).
        seed: Fixes the train/val split, the shuffling order and the augmentation stream.
        predict_dir: Folder of fundus images (any size, PNG/JPEG) that ``predict`` reads.

    Subclasses set ``image_size``, ``mean`` and ``std`` and implement
    :meth:`fit_normalisation`. The normalisation is saved in checkpoints (:meth:`state_dict`),
    so ``predict --ckpt_path`` normalises new images exactly as in training without reading the
    training data. So is the number of training passes drawn so far: the order and the
    augmentation of each pass follow ``(seed, pass)`` (:mod:`multitask_dr.seeding`), so ``fit``
    resumed from a checkpoint continues exactly as the uninterrupted run.
    """

    image_size: int
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    def __init__(
        self,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        seed: int,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.predict_dir = predict_dir
        self.train_passes = PassCounter()

    def setup(self, stage: str | None = None) -> None:
        """A new ``fit`` starts the training stream at its beginning (a checkpoint moves it)."""
        if stage in (None, "fit"):
            self.train_passes.value = 0

    def loader(
        self, dataset: Dataset, train: bool, weights: Sequence[float] | None = None
    ) -> DataLoader[dict[str, Any]]:
        """A DataLoader; training ones draw order and augmentation from ``(seed, pass)``.

        Args:
            dataset: The samples.
            train: Shuffle (or draw by ``weights``) and augment with per-draw seeds.
            weights: Training draws with replacement in proportion to these (class balance).
        """
        sampler = None
        if train:
            trainer = self.trainer
            sampler = PassSampler(
                len(dataset),  # type: ignore[arg-type]
                self.seed,
                self.train_passes,
                weights,
                num_replicas=trainer.world_size if trainer is not None else 1,
                rank=trainer.global_rank if trainer is not None else 0,
            )
            dataset = SeededSamples(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            worker_init_fn=seed_worker,
            # Only seeds the workers' numpy; order and augmentation come from the sampler.
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def fit_normalisation(self) -> None:
        """Compute ``mean``/``std`` from the training data (subclasses know where it is)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The normalisation and the training passes drawn, saved into checkpoints."""
        state: dict[str, Any] = {"train_passes": self.train_passes.value}
        if self.mean is not None and self.std is not None:
            state |= {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the checkpoint's normalisation where none was configured explicitly.

        Also continue its training stream: the next pass is the one the saved run would draw.
        """
        self.train_passes.value = int(state_dict.get("train_passes", 0))
        if self.mean is None and "mean" in state_dict:
            self.mean = tuple(state_dict["mean"])  # type: ignore[assignment]
        if self.std is None and "std" in state_dict:
            self.std = tuple(state_dict["std"])  # type: ignore[assignment]

    def predict_dataset(self) -> ImageFolderDataset:
        """``predict_dir`` preprocessed like the training images (FOV crop, resize, normalise).

        Raises:
            DataError: When ``predict_dir`` is unset, missing or holds no image.
        """
        if self.predict_dir is None:
            raise DataError(
                "predict needs a folder of images: pass --data.predict_dir DIR "
                "(data.init_args.predict_dir in YAML)"
            )
        if self.mean is None or self.std is None:
            # Reached with a checkpoint older than the saved normalisation, or without one.
            self.fit_normalisation()
        assert self.mean is not None and self.std is not None
        transform = SampleTransform([], self.mean, self.std)
        return ImageFolderDataset(
            self.predict_dir, self.image_size, getattr(self, "crop_fov", True), transform
        )

    def predict_dataloader(self) -> DataLoader:
        """Batches of ``predict_dir`` in file-name order."""
        return self.loader(self.predict_dataset(), train=False)
