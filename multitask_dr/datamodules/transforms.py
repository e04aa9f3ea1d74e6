"""Albumentations pipelines applied to sample dicts (image and mask together).

Colour operations and CLAHE run on uint8 before ``Normalize``; geometric ones move image and
mask together. Seeding: albumentations ignores ``torch``/``numpy`` seeds, so each pipeline gets
``seed`` at construction, and training loaders reseed it for every draw
(:class:`~multitask_dr.seeding.SeededSamples`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from multitask_dr.datasets.preprocess import FOV_THRESHOLD
from multitask_dr.environment import environment_defaults

# The one import of albumentations in the package: it phones home for updates at import unless
# told not to.
with environment_defaults(NO_ALBUMENTATIONS_UPDATE="1"):
    import albumentations as A
    from albumentations.augmentations.crops.transforms import BaseCrop
    from albumentations.pytorch import ToTensorV2


@dataclass
class Augmentation:
    """Training augmentation settings (all off means: no augmentation).

    Args:
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        rotate: Maximum rotation in degrees (uniform in ``[-rotate, rotate]``).
        brightness_contrast: Strength of random brightness/contrast changes (0 = off).
        saturation: Strength of saturation jitter (0 = off).
        hue: Hue jitter as a fraction of the colour circle; keep tiny for fundus (0 = off).
        clahe: Probability of CLAHE on the image.
        crop_scale: Lower bound of the area kept by a random resized crop (1 = off).
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rotate: float = 15.0
    brightness_contrast: float = 0.1
    saturation: float = 0.05
    hue: float = 0.0
    clahe: float = 0.0
    crop_scale: float = 1.0


NO_AUGMENTATION = Augmentation(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


class LesionCentredCrop(BaseCrop):
    """Square training patch, centred on a lesion with probability ``lesion_share``.

    Lesion-centred patches first pick a lesion *type* uniformly among those present, then one of
    its pixels, so rare microaneurysms are drawn as often as large exudate fields (picking a
    lesion pixel uniformly, as ``CropNonEmptyMaskIfExists`` does, would almost never centre on an
    MA). Otherwise, or when the image has no lesion, the patch is placed uniformly at random.
    The lesion pixel lands at a random position inside the patch, not always its centre.

    Args:
        size: Patch side length (the image must be at least this large).
        lesion_share: Probability of a lesion-centred patch.
        p: Probability of applying the crop at all.
    """

    def __init__(self, size: int, lesion_share: float = 0.5, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.size = size
        self.lesion_share = lesion_share

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """Pick the crop box from the mask."""
        height, width = params["shape"][:2]
        if height < self.size or width < self.size:
            raise ValueError(f"patch size {self.size} exceeds the image ({height}x{width})")
        x0 = self.py_random.randint(0, width - self.size)
        y0 = self.py_random.randint(0, height - self.size)
        mask = data.get("mask")
        if mask is not None and self.py_random.random() < self.lesion_share:
            lesion = mask == 1
            present = [c for c in range(lesion.shape[-1]) if lesion[..., c].any()]
            if present:
                channel = self.py_random.choice(present)
                rows, cols = np.nonzero(lesion[..., channel])
                pick = self.py_random.randrange(len(rows))
                y, x = int(rows[pick]), int(cols[pick])
                x0 = int(
                    np.clip(x - self.py_random.randint(0, self.size - 1), 0, width - self.size)
                )
                y0 = int(
                    np.clip(y - self.py_random.randint(0, self.size - 1), 0, height - self.size)
                )
        return {"crop_coords": (x0, y0, x0 + self.size, y0 + self.size)}


def augmentation_ops(aug: Augmentation, size: int) -> list[A.BasicTransform]:
    """Albumentations operations for ``aug`` on ``size``² inputs (no normalisation)."""
    ops: list[A.BasicTransform] = []
    if aug.crop_scale < 1.0:
        ops.append(A.RandomResizedCrop(size=(size, size), scale=(aug.crop_scale, 1.0), p=1.0))
    if aug.hflip > 0:
        ops.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip > 0:
        ops.append(A.VerticalFlip(p=aug.vflip))
    if aug.rotate > 0:
        ops.append(A.Affine(rotate=(-aug.rotate, aug.rotate), fill=0, fill_mask=0, p=1.0))
    if aug.clahe > 0:
        ops.append(A.CLAHE(p=aug.clahe))
    if aug.brightness_contrast > 0:
        ops.append(
            A.RandomBrightnessContrast(aug.brightness_contrast, aug.brightness_contrast, p=0.8)
        )
    if aug.saturation > 0 or aug.hue > 0:
        ops.append(A.ColorJitter(0.0, 0.0, aug.saturation, aug.hue, p=0.8))
    return ops


class SampleTransform:
    """Apply an albumentations pipeline to a sample dict and return tensors.

    Output: ``image`` float32 ``(3, H, W)`` normalised, ``mask`` uint8 ``(4, H, W)`` when the
    sample has one, ``grade`` int64 scalar, ``name`` unchanged. A sample's further evaluation
    reads (``image_reads``, the same photograph at other sizes) are normalised alike but go
    through none of ``ops``: a random op would move them apart from ``image``.

    Args:
        ops: Operations before normalisation (augmentation, resizing).
        mean: Per-channel mean of the training images, in [0, 1].
        std: Per-channel standard deviation, in [0, 1].
        seed: Seed of the augmentation random stream.
    """

    def __init__(
        self,
        ops: list[A.BasicTransform],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        seed: int | None = None,
    ) -> None:
        normalise = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)
        self.pipeline = A.Compose([*ops, normalise, ToTensorV2(transpose_mask=True)])
        self.normalise = A.Compose([normalise, ToTensorV2()])
        if seed is not None:
            self.set_random_seed(seed)

    def set_random_seed(self, seed: int) -> None:
        """Reseed the augmentation stream.

        One generator shared by every operation: albumentations' own ``set_random_seed`` (and
        ``Compose(seed=...)``) gives each operation a generator seeded alike, so their draws
        coincide, e.g. a horizontal and a vertical flip of equal probability always together.
        """
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform one sample dict."""
        inputs = {"image": sample["image"]}
        if "mask" in sample:
            inputs["mask"] = sample["mask"]
        out = self.pipeline(**inputs)
        result = dict(sample)
        result["image"] = out["image"].float()
        if "mask" in out:
            result["mask"] = out["mask"].to(torch.uint8)
        result["grade"] = torch.as_tensor(sample["grade"], dtype=torch.long)
        if "image_reads" in sample:
            reads = sample["image_reads"]
            result["image_reads"] = [self.normalise(image=read)["image"].float() for read in reads]
        return result


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed each worker's numpy and ``random`` apart.

    Augmentation does not draw from them (its seeds come with each sample); this only keeps
    anything else random in a worker from repeating the other workers.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def resize_op(size: int) -> A.BasicTransform:
    """An op resizing to ``size``² (bilinear), e.g. to feed a small file to a larger encoder."""
    return A.Resize(size, size)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of ``(N, H, W, 3)`` uint8 images, over the retina.

    Black surround pixels (all channels below
    :data:`~multitask_dr.datasets.preprocess.FOV_THRESHOLD`, the field-of-view crop's own
    threshold) are excluded so the FOV's size doesn't skew them.
    """
    flat = images.reshape(-1, 3)
    retina = flat[flat.max(axis=1) >= FOV_THRESHOLD]
    if len(retina) == 0:
        retina = flat
    values = retina.astype(np.float64) / 255.0
    return tuple(values.mean(axis=0).tolist()), tuple(np.maximum(values.std(axis=0), 1e-3).tolist())
