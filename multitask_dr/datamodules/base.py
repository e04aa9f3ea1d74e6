"""Shared datamodule plumbing: seeded order and augmentation, predict folders, photo folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from multitask_dr.datamodules.transforms import (
    NO_AUGMENTATION,
    Augmentation,
    SampleTransform,
    augmentation_ops,
    channel_stats,
    seed_worker,
)
from multitask_dr.datasets.folder import ImageFolderDataset
from multitask_dr.datasets.problems import DataError
from multitask_dr.seeding import PassCounter, PassSampler, SeededSamples


def stratified_split(
    names: list[str], strata: list[int], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split names into train/val, drawing ``val_fraction`` of every stratum by ``seed``.

    Args:
        names: Sample names.
        strata: One stratum id per name (here: which lesions are present, as a bit set).
        val_fraction: Share of each stratum sent to validation (at least one per stratum
            with two or more members, when ``val_fraction > 0``).
        seed: Random seed.

    Returns:
        Sorted train names and sorted validation names.
    """
    rng = np.random.default_rng(seed)
    val: list[str] = []
    for stratum in sorted(set(strata)):
        members = [n for n, s in zip(names, strata, strict=True) if s == stratum]
        rng.shuffle(members)
        count = int(round(len(members) * val_fraction))
        if val_fraction > 0 and count == 0 and len(members) >= 2:
            count = 1
        val += members[:count]
    val_set = set(val)
    return sorted(n for n in names if n not in val_set), sorted(val)


def check_read_sizes(sizes: list[int] | None, image_size: int) -> tuple[int, ...]:
    """``eval_read_sizes`` as a tuple, each a positive size other than ``image_size``, once.

    Raises:
        ValueError: Naming the offending size.
    """
    sizes = list(sizes or [])
    for size in sizes:
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"eval_read_sizes must be positive sizes in pixels, got {size!r}")
        if size == image_size:
            raise ValueError(
                f"eval_read_sizes holds {size}, the working size (image_size): it is read anyway"
            )
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"eval_read_sizes names a size twice: {sizes}")
    return tuple(sizes)


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
    #: Further sizes evaluation and ``predict`` read each image at (none unless a subclass
    #: takes ``eval_read_sizes``).
    eval_read_sizes: tuple[int, ...] = ()

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
            self.predict_dir,
            self.image_size,
            getattr(self, "crop_fov", True),
            transform,
            read_sizes=self.eval_read_sizes,
        )

    def predict_dataloader(self) -> DataLoader:
        """Batches of ``predict_dir`` in file-name order."""
        return self.loader(self.predict_dataset(), train=False)


class PhotoFolderDataModule(SeededDataModule):
    """Base of the datamodules over a folder of full-resolution photographs (TJDR, graded).

    Holds what :class:`~multitask_dr.datamodules.TJDRDataModule` and
    :class:`~multitask_dr.datamodules.GradedFolderDataModule` read the same way: the root and
    its cache, the working resolution and field-of-view crop, the drawn split's fractions and
    seed, strictness, normalisation, the synthetic stand-in written when the root is missing,
    and the evaluation loaders. Subclasses keep their own full ``__init__`` signatures (the
    YAML keys) and pass these through.

    Args:
        root: The dataset's root folder.
        image_size: Working resolution after the field-of-view crop.
        crop_fov: Crop to the retina's bounding square before resizing.
        val_fraction: Share held out for validation where there is no official split.
        test_fraction: Share held out for testing where there is no official split.
        split_seed: Seed of the drawn splits (``None``: ``seed``).
        strict: Raise on the first problem instead of reporting and skipping it.
        name: The source's name in logs.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        seed: Fixes shuffling and augmentation (and the split, without ``split_seed``).
        augment: Training augmentation (``None``: the default :class:`Augmentation`).
        mean: Normalisation mean in [0, 1] (``None``: from the training images' retina).
        std: Normalisation std in [0, 1] (``None``: from the training images' retina).
        cache_dir: Where preprocessed samples are cached (``None``: ``<root>/.cache``).
        synthetic: Arguments of :meth:`write_synthetic` when ``root`` does not exist
            (``None``: fail with a message instead).
        predict_dir: Folder of fundus images (any size) that ``predict`` reads.
    """

    #: What :meth:`write_synthetic` writes, for the log line.
    synthetic_description: str = "a synthetic dataset"

    def __init__(
        self,
        root: str,
        *,
        image_size: int,
        crop_fov: bool,
        val_fraction: float,
        test_fraction: float,
        split_seed: int | None,
        strict: bool,
        name: str,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        seed: int,
        augment: Augmentation | None,
        mean: tuple[float, float, float] | None,
        std: tuple[float, float, float] | None,
        cache_dir: str | None,
        synthetic: dict[str, int] | None,
        predict_dir: str | None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, predict_dir)
        self.root = Path(root)
        self.image_size = image_size
        self.crop_fov = crop_fov
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = seed if split_seed is None else split_seed
        self.strict = strict
        self.name = name
        self.augment = augment if augment is not None else Augmentation()
        self.mean, self.std = mean, std
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".cache"
        self.synthetic = synthetic
        self.datasets: dict[str, Any] = {}

    def prepare_data(self) -> None:
        """Write the synthetic stand-in on first use when asked to and the root is missing."""
        if not self.root.exists() and self.synthetic is not None:
            rank_zero_info(f"{self.root} not found: writing {self.synthetic_description} there")
            self.write_synthetic(self.synthetic)

    def write_synthetic(self, settings: dict[str, Any]) -> None:
        """Write a synthetic dataset at ``root`` with these writer arguments."""
        raise NotImplementedError

    def crop_ops(self, train: bool) -> tuple[list[Any], int]:
        """Ops before augmentation and the size they leave (default: none, ``image_size``)."""
        return [], self.image_size

    def transform(self, train: bool) -> SampleTransform:
        """The train (augmenting) or evaluation pipeline."""
        assert self.mean is not None and self.std is not None
        ops, size = self.crop_ops(train)
        ops += augmentation_ops(self.augment if train else NO_AUGMENTATION, size)
        return SampleTransform(ops, self.mean, self.std, seed=self.seed if train else None)

    def normalise_from(self, images: np.ndarray) -> None:
        """Per-channel retina mean/std of ``images`` ``(N, H, W, 3)``, where not configured."""
        mean, std = channel_stats(images)
        self.mean = self.mean or mean  # type: ignore[assignment]
        self.std = self.std or std  # type: ignore[assignment]

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self.loader(self.datasets["train"], train=True)

    def val_dataloader(self) -> DataLoader:
        """The official validation split, or the seeded share of ``train``."""
        return self.loader(self.datasets["val"], train=False)

    def test_dataloader(self) -> DataLoader:
        """The official test split, or the seeded test share."""
        return self.loader(self.datasets["test"], train=False)
