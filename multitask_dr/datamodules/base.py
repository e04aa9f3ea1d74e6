"""Shared DataLoader plumbing: seeded shuffling, per-worker augmentation seeds, predict folders."""

from __future__ import annotations

from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from multitask_dr.datamodules.transforms import SampleTransform, seed_worker
from multitask_dr.datasets.folder import ImageFolderDataset
from multitask_dr.datasets.problems import DataError


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
    training data.
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

    def fit_normalisation(self) -> None:
        """Compute ``mean``/``std`` from the training data (subclasses know where it is)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The normalisation, saved into checkpoints by Lightning."""
        if self.mean is None or self.std is None:
            return {}
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the checkpoint's normalisation where none was configured explicitly."""
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
