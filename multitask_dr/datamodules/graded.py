"""Grading on full-resolution public photographs (EyePACS, APTOS, Messidor-2, IDRiD, DDR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from multitask_dr.datamodules.base import SeededDataModule
from multitask_dr.datamodules.tjdr import stratified_split
from multitask_dr.datamodules.transforms import (
    NO_AUGMENTATION,
    Augmentation,
    SampleTransform,
    augmentation_ops,
    channel_stats,
)
from multitask_dr.datasets.graded import GradedFolderDataset, GradedLayout, official_splits
from multitask_dr.datasets.graded import check_layout as check_graded_layout
from multitask_dr.datasets.problems import DataError
from multitask_dr.lesions import NUM_GRADES


class GradedFolderDataModule(SeededDataModule):
    """DR grading on a public dataset's own folder layout, photographs preprocessed like TJDR's.

    Each photograph is cropped to its field of view and resized to ``image_size``
    (:func:`~multitask_dr.datasets.preprocess.crop_and_resize`, as lesion photographs), so a
    joint run's grading source looks like its lesion sources. Official splits are kept
    (IDRiD: train/test; DDR: train/valid/test; EyePACS: test once Kaggle's released test
    labels are there); what a layout lacks is drawn by
    ``split_seed``, stratified by grade: test (``test_fraction`` of the labelled images) first,
    then validation (``val_fraction`` of the rest). Ungradable images are skipped and counted
    in the problem log (a warning at setup).

    Args:
        root: The dataset's root (see :mod:`multitask_dr.datasets.graded` for each layout).
        layout: ``eyepacs``, ``aptos``, ``messidor2``, ``idrid`` or ``ddr``.
        image_size: Working resolution after the field-of-view crop.
        crop_fov: Crop to the retina's bounding square before resizing.
        val_fraction: Share of ``train`` held out for validation where there is no official one.
        test_fraction: Share held out for testing where there is no official test split.
        split_seed: Seed of the drawn splits (``None``: ``seed``).
        strict: Raise on the first problem instead of reporting and skipping it.
        name: The source's name in logs (``None``: the layout's name).
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        seed: Fixes shuffling and augmentation (and the split, without ``split_seed``).
        augment: Training augmentation.
        mean: Normalisation mean in [0, 1] (``None``: from the training images' retina).
        std: Normalisation std in [0, 1] (``None``: from the training images' retina).
        cache_dir: Where preprocessed images are cached (``None``: ``<root>/.cache``).
        synthetic: When ``root`` does not exist, write a synthetic EyePACS-layout folder there
            with these :func:`~multitask_dr.datasets.synthetic.writers.write_eyepacs` arguments
            instead of failing (``layout: eyepacs`` only; ``None``: fail with a message).
        predict_dir: Folder of fundus images (any size) that ``predict`` reads.
    """

    def __init__(
        self,
        root: str,
        layout: GradedLayout = "eyepacs",
        image_size: int = 128,
        crop_fov: bool = True,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int | None = None,
        strict: bool = False,
        name: str | None = None,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        augment: Augmentation | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        cache_dir: str | None = None,
        synthetic: dict[str, int] | None = None,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, predict_dir)
        self.root = Path(root)
        self.layout: GradedLayout = check_graded_layout(layout)
        self.image_size = image_size
        self.crop_fov = crop_fov
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = seed if split_seed is None else split_seed
        self.strict = strict
        self.name = name or layout
        self.augment = augment if augment is not None else Augmentation()
        self.mean, self.std = mean, std
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".cache"
        if synthetic is not None and self.layout != "eyepacs":
            raise ValueError(f"synthetic writes the eyepacs layout, not {self.layout!r}")
        self.synthetic = synthetic
        self.datasets: dict[str, GradedFolderDataset] = {}

    def prepare_data(self) -> None:
        """Write the synthetic folder on first use when asked to and the root is missing."""
        if not self.root.exists() and self.synthetic is not None:
            from multitask_dr.datasets.synthetic.writers import write_eyepacs

            rank_zero_info(f"{self.root} not found: writing a synthetic EyePACS folder there")
            write_eyepacs(self.root, **self.synthetic)

    def dataset(self, split: str) -> GradedFolderDataset:
        """One official split, indexed and verified (unreadable images reported, dropped)."""
        dataset = GradedFolderDataset(
            self.root,
            self.layout,
            split,
            image_size=self.image_size,
            crop_fov=self.crop_fov,
            strict=self.strict,
            cache_dir=self.cache_dir,
        )
        dataset.verify()
        if len(dataset.problems):
            rank_zero_warn(dataset.problems.summary())
        if len(dataset) == 0:
            raise DataError(f"no usable {self.layout} {split} images", path=self.root)
        return dataset

    def splits(self) -> dict[str, GradedFolderDataset]:
        """``train``, ``val`` and ``test``: the official ones, the rest drawn by seed."""
        official = official_splits(self.root, self.layout)
        full = self.dataset("train")
        parts: dict[str, GradedFolderDataset] = {}
        if "test" in official:
            parts["test"] = self.dataset("test")
        else:
            rest, test = self._draw(full, self.test_fraction)
            parts["test"], full = full.subset(test), full.subset(rest)
        if "valid" in official:
            parts["val"] = self.dataset("valid")
            parts["train"] = full
        else:
            train, val = self._draw(full, self.val_fraction)
            parts["train"], parts["val"] = full.subset(train), full.subset(val)
        return parts

    def _draw(self, dataset: GradedFolderDataset, fraction: float) -> tuple[list[str], list[str]]:
        names = [r.name for r in dataset.records]
        return stratified_split(names, dataset.grades.tolist(), fraction, self.split_seed)

    def transform(self, train: bool) -> SampleTransform:
        """The train (augmenting) or evaluation pipeline."""
        assert self.mean is not None and self.std is not None
        ops = augmentation_ops(self.augment if train else NO_AUGMENTATION, self.image_size)
        return SampleTransform(ops, self.mean, self.std, seed=self.seed if train else None)

    def setup(self, stage: str | None = None) -> None:
        """Index, verify and split; attach the transforms."""
        super().setup(stage)
        if stage == "predict":
            return
        self.datasets = self.splits()
        if self.mean is None or self.std is None:
            self.fit_normalisation()
        for split, dataset in self.datasets.items():
            dataset.transform = self.transform(train=split == "train")
            counts = np.bincount(dataset.grades, minlength=NUM_GRADES).tolist()
            rank_zero_info(
                f"{self.name} {split}: {len(dataset)} images, grades 0-4: {counts}, "
                f"{dataset.ungradable} ungradable skipped"
            )

    def fit_normalisation(self) -> None:
        """Per-channel retina mean/std of (up to 64) training images, where not configured."""
        train = self.datasets.get("train") or self.splits()["train"]
        images = np.stack([train.load(i) for i in range(min(len(train), 64))])
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
