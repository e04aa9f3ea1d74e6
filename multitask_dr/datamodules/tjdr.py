"""TJDR datamodule: seeded stratified train/val split, cached preprocessing, augmentation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from multitask_dr.datamodules.base import (
    PhotoFolderDataModule,
    check_read_sizes,
    stratified_split,
)
from multitask_dr.datamodules.transforms import (
    Augmentation,
    LesionCentredCrop,
)
from multitask_dr.datasets.annotated_lesions import check_lesions, unscore_unannotated
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.rasterize import DEFAULT_RASTERIZE, RasterizeRule, check_rule
from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.datasets.tjdr_records import AnnotationFormat, Layout
from multitask_dr.lesions import LESIONS

#: Layouts without an official test split: one is drawn by ``split_seed``.
DRAWN_TEST_LAYOUTS = ("flat", "fgadr")

#: Layouts with an official validation split (named ``valid``), used instead of a drawn one.
OFFICIAL_VAL_LAYOUTS = ("ddr",)


class Repeat(Dataset):
    """A dataset seen ``times`` per epoch (random transforms make each pass different).

    Args:
        dataset: The dataset to repeat.
        times: Passes per epoch.
    """

    def __init__(self, dataset: Dataset, times: int) -> None:
        self.dataset = dataset
        self.times = times

    def __len__(self) -> int:
        return len(self.dataset) * self.times  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]


class TJDRDataModule(PhotoFolderDataModule):
    """Lesion segmentation on TJDR-layout data (release PNGs and/or Labelme JSON).

    Args:
        root: Dataset root with ``train/`` and ``test/`` (the release layout), or a plain
            Labelme folder with ``layout: flat``.
        image_size: Working resolution after cropping to the field of view (validation and
            test run on the whole image at this size; see the task's ``eval_window``).
        patch_size: Train on random ``patch_size``² patches of the working-resolution image
            (``None``: train on whole images).
        lesion_patch_share: Share of training patches centred on a lesion (a lesion type is
            drawn uniformly among those present, then one of its pixels).
        patches_per_image: Training patches drawn from each image per epoch (each a fresh
            random draw), so a small set of large images still gives enough steps.
        annotation: ``auto`` (PNG when present, else Labelme JSON), ``png`` or ``labelme``.
        label_map: Labelme label -> lesion (``MA``/``HE``/``EX``/``SE``) table; ``None`` uses
            the built-in table of common spellings.
        rasterize: How Labelme JSON becomes masks: ``labelme`` (default: the masks Labelme's
            own converter makes, as TJDR's release PNGs were) or ``pixel_centre``
            (area-unbiased); see :mod:`multitask_dr.datasets.rasterize`.
        strict: Raise on the first bad file instead of reporting and skipping it.
        crop_fov: Crop to the retina's bounding square before resizing.
        val_fraction: Share of ``train`` held out for validation, stratified by lesion presence.
        layout: ``tjdr`` (``train/`` and ``test/`` folders) or ``flat`` (images and Labelme
            JSON side by side): a flat folder is split by ``seed`` into test
            (``test_fraction``), then validation (``val_fraction`` of the rest) and train,
            stratified by lesion presence; the split is written to
            ``<cache_dir>/split-seed<split_seed>.csv``. Public datasets with one mask file
            per lesion (:mod:`multitask_dr.datasets.lesion_files`): ``idrid`` (official
            train/test), ``ddr`` (official train/valid/test: ``valid`` is the validation
            split) and ``fgadr`` (one folder, split by seed like a flat one).
        test_fraction: Share of a flat folder held out for testing.
        split_seed: Seed of the train/val(/test) split (``None``: ``seed``). Fix it to train
            several seeds on the same split and score them on the same test images.
        annotated_lesions: Lesion types this source annotates (``None``: all four). The other
            channels are unscored for its images everywhere (losses, metrics, lesion-centred
            patches, W&B panels), not background: e.g. ``[EX]`` for HEI-MED.
        name: The source's name in logs when several lesion sources train together
            (``None``: the root folder's name).
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader worker processes.
        seed: Fixes the split, shuffling and augmentation.
        augment: Training augmentation.
        mean: Normalisation mean in [0, 1] (``None``: from the training images' retina).
        std: Normalisation std in [0, 1] (``None``: from the training images' retina).
        cache_dir: Where preprocessed samples are cached (``None``: ``<root>/.cache``).
        synthetic: When ``root`` does not exist, write a synthetic TJDR there with these
            ``write_tjdr`` arguments instead of failing (``None``: fail with a message).
        predict_dir: Folder of fundus images (any size) that ``predict`` reads, preprocessed
            like the training images (field-of-view crop, ``image_size``, normalisation).
        eval_read_sizes: Further sizes validation, test and ``predict`` also read each
            photograph at (e.g. ``[1024]`` beside an ``image_size`` of 768): the task averages
            each read's lesion maps, resized onto the working grid, with the working-size map
            (:mod:`multitask_dr.tasks.inference`). Training never reads them; each read costs
            one more lesion pass per view.
    """

    def __init__(
        self,
        root: str = "data/synthetic/tjdr",
        image_size: int = 128,
        patch_size: int | None = None,
        lesion_patch_share: float = 0.5,
        patches_per_image: int = 1,
        annotation: AnnotationFormat = "auto",
        label_map: dict[str, str | None] | None = None,
        rasterize: RasterizeRule = DEFAULT_RASTERIZE,
        strict: bool = False,
        crop_fov: bool = True,
        val_fraction: float = 0.2,
        layout: Layout = "tjdr",
        test_fraction: float = 0.2,
        split_seed: int | None = None,
        annotated_lesions: list[str] | None = None,
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
        eval_read_sizes: list[int] | None = None,
    ) -> None:
        if patch_size is not None and patch_size > image_size:
            raise ValueError(f"patch_size {patch_size} exceeds image_size {image_size}")
        super().__init__(
            root,
            image_size=image_size,
            crop_fov=crop_fov,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split_seed=split_seed,
            strict=strict,
            name=name or Path(root).name,
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
        self.patch_size = patch_size
        self.eval_read_sizes = check_read_sizes(eval_read_sizes, image_size)
        self.lesion_patch_share = lesion_patch_share
        self.patches_per_image = patches_per_image
        self.annotation: AnnotationFormat = annotation
        self.label_map = label_map
        self.rasterize: RasterizeRule = check_rule(rasterize)
        self.layout: Layout = layout
        self.annotated_lesions = check_lesions(annotated_lesions)
        self.datasets: dict[str, TJDRDataset] = {}
        # Lesion presence per training image: a flat folder's test draw and the train/val draw
        # both stratify by it, and each needs a mask decode.
        self._presence: dict[str, int] = {}

    synthetic_description = "a synthetic TJDR"

    def write_synthetic(self, settings: dict[str, Any]) -> None:
        """Write a synthetic TJDR tree at ``root`` with these writer arguments."""
        from multitask_dr.datasets.synthetic.writers import write_tjdr

        write_tjdr(self.root, **settings)

    def dataset(self, split: str, names: list[str] | None = None) -> TJDRDataset:
        """A dataset over one split folder with this datamodule's reading settings."""
        if not self.root.exists():
            raise DataError(
                f"TJDR root {self.root} does not exist: point data.root at the folder holding "
                "train/ and test/, or set data.synthetic to generate a synthetic one"
            )
        return TJDRDataset(
            self.root,
            split,
            annotation=self.annotation,
            image_size=self.image_size,
            crop_fov=self.crop_fov,
            label_map=self.label_map,
            strict=self.strict,
            names=names,
            cache_dir=self.cache_dir,
            rasterize=self.rasterize,
            layout=self.layout,
            annotated_lesions=self.annotated_lesions,
        )

    def crop_ops(self, train: bool) -> tuple[list[Any], int]:
        """Training crops to lesion-centred patches when ``patch_size`` is set."""
        if train and self.patch_size is not None:
            return [LesionCentredCrop(self.patch_size, self.lesion_patch_share)], self.patch_size
        return [], self.image_size

    def setup(self, stage: str | None = None) -> None:
        """Index, verify (decode once into the cache), split and attach transforms."""
        super().setup(stage)
        if stage == "predict":
            # predict_dataloader reads predict_dir after the checkpoint has restored the
            # normalisation, so predicting needs no training data.
            return
        full, test = self._train_and_test()
        if self.mean is None or self.std is None:
            self.fit_normalisation(full)
        if stage in (None, "fit", "validate"):
            names = [r.name for r in full.records]
            strata = [self._lesion_bits(full, i) for i in range(len(full))]
            if self.layout in OFFICIAL_VAL_LAYOUTS:
                val = self.dataset("valid")
                val.verify()
                self._report(val)
                train_names, val_names = names, [r.name for r in val.records]
                self.datasets["train"], self.datasets["val"] = full, val
            else:
                train_names, val_names = stratified_split(
                    names, strata, self.val_fraction, self.split_seed
                )
                self.datasets["train"] = full.subset(train_names)
                self.datasets["val"] = full.subset(val_names)
            self.datasets["train"].transform = self.transform(train=True)
            self.for_evaluation(self.datasets["val"])
            rank_zero_info(f"{self.name} split: {len(train_names)} train / {len(val_names)} val")
            if test is not None:
                self._write_split(train_names, val_names, [r.name for r in test.records])
        if stage in (None, "test"):
            if test is None:
                test = self.dataset("test")
                test.verify()
                self._report(test)
            self.for_evaluation(test)
            self.datasets["test"] = test

    def for_evaluation(self, dataset: TJDRDataset) -> None:
        """Give an evaluation split its pipeline (no augmentation) and ``eval_read_sizes``."""
        dataset.transform = self.transform(train=False)
        dataset.read_sizes = self.eval_read_sizes

    def _train_and_test(self) -> tuple[TJDRDataset, TJDRDataset | None]:
        """The verified ``train`` split, and for a flat folder its seeded test part too.

        A flat folder is indexed and verified once; the test share is drawn first, by
        ``seed`` and stratified by lesion presence, so the test images never depend on
        ``val_fraction``.
        """
        full = self.dataset("train")
        full.verify()
        self._report(full)
        if self.layout not in DRAWN_TEST_LAYOUTS:
            return full, None
        names = [r.name for r in full.records]
        strata = [self._lesion_bits(full, i) for i in range(len(full))]
        rest, test_names = stratified_split(names, strata, self.test_fraction, self.split_seed)
        return full.subset(rest), full.subset(test_names)

    def _write_split(self, train: list[str], val: list[str], test: list[str]) -> None:
        """Write a flat folder's drawn split down (``name,split``), so it can be compared."""
        path = self.cache_dir / f"split-seed{self.split_seed}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "split"])
            for split, names in (("train", train), ("val", val), ("test", test)):
                writer.writerows([name, split] for name in names)
        rank_zero_info(f"{self.name} split ({len(test)} test) written to {path}")

    def fit_normalisation(self, full: TJDRDataset | None = None) -> None:
        """Per-channel retina mean/std of (up to 64) training images, where not configured."""
        if full is None:
            full = self.dataset("train")
            full.verify()
        self.normalise_from(np.stack([full.load(i)[0] for i in range(min(len(full), 64))]))

    def _lesion_bits(self, dataset: TJDRDataset, index: int) -> int:
        """Which annotated lesion types image ``index`` holds, as a bit set (read once)."""
        name = dataset.records[index].name
        if name not in self._presence:
            # Only the annotated lesion types: an occasional mark of another type says nothing.
            mask = unscore_unannotated(dataset.load(index)[1], dataset.annotated_lesions)
            present = [(mask[..., c] == 1).any() for c in range(len(LESIONS))]
            self._presence[name] = sum(1 << c for c, p in enumerate(present) if p)
        return self._presence[name]

    @staticmethod
    def _report(dataset: TJDRDataset) -> None:
        if len(dataset.problems):
            rank_zero_warn(dataset.problems.summary())
        if len(dataset) == 0:
            folder = dataset.root if dataset.layout != "tjdr" else dataset.root / dataset.split
            raise DataError("no usable samples", path=folder)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        train = self.datasets["train"]
        if self.patches_per_image > 1:
            return self.loader(Repeat(train, self.patches_per_image), train=True)
        return self.loader(train, train=True)
