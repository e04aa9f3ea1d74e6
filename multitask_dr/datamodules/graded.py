"""Grading on full-resolution public photographs (EyePACS, APTOS, Messidor-2, IDRiD, DDR)."""

from __future__ import annotations

from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from multitask_dr.datamodules.base import PhotoFolderDataModule, stratified_split
from multitask_dr.datamodules.transforms import (
    Augmentation,
)
from multitask_dr.datasets.graded import GradedFolderDataset, GradedLayout, official_splits
from multitask_dr.datasets.graded import check_layout as check_graded_layout
from multitask_dr.datasets.problems import DataError
from multitask_dr.lesions import NUM_GRADES


class GradedFolderDataModule(PhotoFolderDataModule):
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
        layout = check_graded_layout(layout)
        super().__init__(
            root,
            image_size=image_size,
            crop_fov=crop_fov,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split_seed=split_seed,
            strict=strict,
            name=name or layout,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            augment=augment,
            mean=mean,
            std=std,
            cache_dir=cache_dir,
            synthetic=synthetic,
            predict_dir=predict_dir,
        )
        self.layout: GradedLayout = layout
        if synthetic is not None and self.layout != "eyepacs":
            raise ValueError(f"synthetic writes the eyepacs layout, not {self.layout!r}")
        self.datasets: dict[str, GradedFolderDataset] = {}

    synthetic_description = "a synthetic EyePACS folder"

    def write_synthetic(self, settings: dict[str, Any]) -> None:
        """Write a synthetic EyePACS-layout folder at ``root`` with these writer arguments."""
        from multitask_dr.datasets.synthetic.writers import write_eyepacs

        write_eyepacs(self.root, **settings)

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
        self.normalise_from(np.stack([train.load(i) for i in range(min(len(train), 64))]))
