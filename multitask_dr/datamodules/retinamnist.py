"""RetinaMNIST datamodule: the official train/val/test splits, resized for the shared encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from multitask_dr.datamodules.base import SeededDataModule
from multitask_dr.datamodules.transforms import (
    NO_AUGMENTATION,
    Augmentation,
    SampleTransform,
    augmentation_ops,
    channel_stats,
    resize_op,
)
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.retinamnist import RetinaMNISTDataset, npz_path
from multitask_dr.lesions import NUM_GRADES


class RetinaMNISTDataModule(SeededDataModule):
    """DR grading on RetinaMNIST (MedMNIST v2), offline.

    Input resizing policy: images are read at ``size`` (medmnist's file) and resized to
    ``image_size`` (bilinear) before augmentation, so a small file can feed an encoder that
    needs more than 28 px; normalisation uses the train split's own mean/std unless given.

    Args:
        root: Folder with ``retinamnist.npz`` / ``retinamnist_{64,128,224}.npz``.
        size: Which medmnist file to read: 28, 64, 128 or 224.
        image_size: Side length fed to the network (``None`` keeps ``size``).
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        seed: Fixes shuffling and augmentation.
        augment: Training augmentation.
        weighted_sampler: Draw training images with probability inversely proportional to
            their grade's frequency (class balancing by sampling).
        mean: Per-channel normalisation mean in [0, 1] (``None``: from the train split).
        std: Per-channel normalisation std in [0, 1] (``None``: from the train split).
        download: Let medmnist download the file (needs a network).
        strict: Raise on the first bad label row instead of reporting and skipping it.
        synthetic: When the file is missing, write a synthetic RetinaMNIST with these
            ``write_retinamnist`` arguments instead of failing (``None``: fail with a message).
        predict_dir: Folder of fundus images (any size) that ``predict`` reads: cropped to the
            field of view, resized to ``image_size`` and normalised like the training images.
    """

    def __init__(
        self,
        root: str = "data/synthetic/retinamnist",
        size: int = 28,
        image_size: int | None = 64,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        augment: Augmentation | None = None,
        weighted_sampler: bool = False,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        download: bool = False,
        strict: bool = False,
        synthetic: dict[str, int] | None = None,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, predict_dir)
        self.root = Path(root)
        self.size = size
        self.image_size = image_size or size
        self.augment = augment if augment is not None else Augmentation()
        self.weighted_sampler = weighted_sampler
        self.mean, self.std = mean, std
        self.download = download
        self.strict = strict
        self.synthetic = synthetic
        self.datasets: dict[str, RetinaMNISTDataset] = {}

    def prepare_data(self) -> None:
        """Write the synthetic file on first use when asked to and it is missing."""
        path = npz_path(self.root, self.size)
        if not path.exists() and self.synthetic is not None:
            from multitask_dr.datasets.synthetic.writers import write_retinamnist

            rank_zero_info(f"{path} not found: writing a synthetic RetinaMNIST there")
            write_retinamnist(self.root, **self.synthetic)

    def transform(self, train: bool) -> SampleTransform:
        """The train (augmenting) or evaluation pipeline."""
        assert self.mean is not None and self.std is not None
        ops: list[Any] = []
        if self.image_size != self.size:
            ops.append(resize_op(self.image_size))
        ops += augmentation_ops(self.augment if train else NO_AUGMENTATION, self.image_size)
        return SampleTransform(ops, self.mean, self.std, seed=self.seed if train else None)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits a stage needs (``fit``: train+val, ``validate``, ``test``)."""
        super().setup(stage)
        if stage == "predict":
            # predict_dataloader reads predict_dir after the checkpoint has restored the
            # normalisation, so predicting needs no RetinaMNIST file.
            return
        if self.mean is None or self.std is None:
            self.fit_normalisation()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "fit", ("train", "val", "test")
        )
        for split in wanted:
            dataset = RetinaMNISTDataset(
                self.root,
                split,
                self.size,
                self.transform(split == "train"),
                self.download,
                strict=self.strict,
            )
            if len(dataset.problems):
                rank_zero_warn(dataset.problems.summary())
            if len(dataset) == 0:
                raise DataError(f"no usable {split} samples", path=npz_path(self.root, self.size))
            self.datasets[split] = dataset
        for split in wanted:
            counts = np.bincount(self.datasets[split].grades, minlength=NUM_GRADES)
            rank_zero_info(
                f"RetinaMNIST {split} ({self.size}px): {len(self.datasets[split])} "
                f"images, grades 0-4: {counts.tolist()}"
            )

    def fit_normalisation(self) -> None:
        """Per-channel mean/std of the train split, where not configured."""
        train = RetinaMNISTDataset(
            self.root, "train", self.size, download=self.download, strict=self.strict
        )
        mean, std = channel_stats(train.images)
        self.mean = self.mean or mean  # type: ignore[assignment]
        self.std = self.std or std  # type: ignore[assignment]

    def sample_weights(self) -> np.ndarray | None:
        """Inverse grade frequency of each training image, when ``weighted_sampler`` is on."""
        if not self.weighted_sampler:
            return None
        grades = self.datasets["train"].grades
        counts = np.bincount(grades, minlength=NUM_GRADES).astype(np.float64)
        return 1.0 / np.maximum(counts[grades], 1.0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced) training batches."""
        return self.loader(self.datasets["train"], train=True, weights=self.sample_weights())

    def val_dataloader(self) -> DataLoader:
        """The official validation split."""
        return self.loader(self.datasets["val"], train=False)

    def test_dataloader(self) -> DataLoader:
        """The official test split (touched once per run for the final number)."""
        return self.loader(self.datasets["test"], train=False)
