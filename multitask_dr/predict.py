"""``multitask-dr predict``: lesion masks, overlays and grade reports for a folder of images.

:class:`PredictionWriter` is a Lightning prediction writer. For each image of
``data.predict_dir`` it writes, into ``output_dir``:

- ``<name>_lesions.png``: a palette PNG at the original image's size in the TJDR release
  encoding (``0`` background, ``1`` EX, ``2`` HE, ``3`` MA, ``4`` SE,
  :data:`~multitask_dr.lesions.RELEASE_PALETTE`); where predicted lesions overlap, the pixel
  takes the first of :data:`~multitask_dr.lesions.RELEASE_PRIORITY`, as every one-index
  file the project writes;
- ``<name>_overlay.png``: the photograph with the lesions filled and outlined in
  :data:`~multitask_dr.lesions.LESION_COLOURS`;
- ``<name>.json``: grade, grade probabilities, expected grade and, per lesion, area, count,
  peak probability and contribution to the grade;

and ``summary.csv`` (one row per image, failed images included with their ``error``).

Lesion maps are predicted at the working resolution and mapped back onto the original file
(bilinear, then thresholded), so areas are in original pixels; pixels outside the field of view
(the dark surround) are never lesions. Counts are 8-connected
components of the thresholded map.

Contributions: ``logit_contribution`` is exact for the ``bottleneck`` head (its grade logits are
a sum of per-lesion terms; for ``softmax`` the term on the predicted grade's logit minus its
mean over grades, since softmax ignores a shift shared by all logits; for ``coral`` the single
shared term, higher = higher grade), ``null`` for other heads. ``grade_effect`` is how much the
expected grade drops when that lesion's map is erased before the grade head (lesion ablation,
:mod:`multitask_dr.attribution`), for any head that reads the maps; ``0`` for
``conditioning: none`` (its grade never sees the maps), ``null`` when the attribution package is
not installed or ``lesion_effects`` is off.

A model whose fit never had a graded image (e.g. ``configs/real_lesions.yaml``: lesion sources
only) has an untrained grade head: its grade, probabilities, expected grade, contributions and
effects are written as empty (``null``) with one warning, not as a grade it never learned.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from PIL import Image
from torch import Tensor

from multitask_dr.datasets.folder import restore_geometry
from multitask_dr.datasets.images import read_image
from multitask_dr.datasets.preprocess import FOV_THRESHOLD
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.release_mask import channels_to_release_mask, release_palette_image
from multitask_dr.lesions import GRADE_NAMES, LESION_COLOURS, LESIONS, NUM_GRADES, RELEASE_INDEX
from multitask_dr.models.ordinal import expected_grade

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- per-image numbers
def lesion_statistics(binary: np.ndarray, probs: np.ndarray) -> dict[str, dict[str, float]]:
    """Area (pixels), count (8-connected components) and peak probability per lesion.

    Args:
        binary: ``(L, H, W)`` bool thresholded maps.
        probs: ``(L, H, W)`` probabilities.
    """
    stats = {}
    for c, lesion in enumerate(LESIONS):
        components = cv2.connectedComponents(binary[c].astype(np.uint8), connectivity=8)[0]
        stats[lesion] = {
            "area_px": int(binary[c].sum()),
            "count": int(components) - 1,
            "max_probability": float(probs[c].max()) if probs[c].size else 0.0,
        }
    return stats


def release_index_mask(probs: np.ndarray, threshold: float) -> np.ndarray:
    """``(H, W)`` uint8 TJDR release indices of the ``(L, H, W)`` maps above ``threshold``."""
    return channels_to_release_mask(np.moveaxis(probs > threshold, 0, -1))


def overlay(
    image: np.ndarray, index_mask: np.ndarray, alpha: float = 0.45, max_side: int | None = 1024
) -> np.ndarray:
    """The photograph with each lesion filled (``alpha``) and outlined in its colour.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        index_mask: ``(H, W)`` release indices (:func:`release_index_mask`).
        alpha: Fill opacity.
        max_side: Downscale the result so its longer side is at most this (``None``: keep).
    """
    out = image.astype(np.float32)
    thickness = max(1, round(max(image.shape[:2]) / 512))
    for lesion in LESIONS:
        region = index_mask == RELEASE_INDEX[lesion]
        if not region.any():
            continue
        colour = np.array(LESION_COLOURS[lesion], dtype=np.float32)
        out[region] = (1 - alpha) * out[region] + alpha * colour
    # cv2 draws only into C-contiguous arrays; numpy keeps a transposed input's layout.
    out_u8 = np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))
    for lesion in LESIONS:
        region = (index_mask == RELEASE_INDEX[lesion]).astype(np.uint8)
        if region.any():
            # Outlines keep a 2-pixel microaneurysm visible once the overlay is downscaled.
            contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out_u8, contours, -1, LESION_COLOURS[lesion], thickness)
    if max_side is not None and max(out_u8.shape[:2]) > max_side:
        scale = max_side / max(out_u8.shape[:2])
        size = (round(out_u8.shape[1] * scale), round(out_u8.shape[0] * scale))
        out_u8 = cv2.resize(out_u8, size, interpolation=cv2.INTER_AREA)
    return out_u8


def logit_contributions(contributions: Tensor, grade_probs: Tensor) -> Tensor:
    """``(B, L)`` per-lesion contribution to the predicted grade from a bottleneck head.

    Args:
        contributions: ``(B, L, G)`` (softmax) or ``(B, L, 1)`` (coral) head terms.
        grade_probs: ``(B, G)`` grade probabilities.
    """
    contributions = contributions.float()
    if contributions.shape[-1] == 1:
        return contributions[..., 0]
    # Softmax is unchanged by adding one value to every logit: only the centred term matters.
    centred = contributions - contributions.mean(dim=-1, keepdim=True)
    chosen = grade_probs.argmax(dim=1)
    return centred.gather(2, chosen[:, None, None].expand(-1, centred.shape[1], 1))[..., 0]


def lesion_effects(model: LightningModule, images: Tensor) -> Tensor | None:
    """``(B, L)`` drop in expected grade when each lesion map is erased; ``None`` if unavailable.

    Uses :func:`multitask_dr.attribution.ablate_lesion_maps` (one more encoder pass). A grade
    head with ``conditioning: none`` never reads the maps: zeros, without the extra pass.
    """
    net = getattr(model, "net", None)
    if net is not None and not net.needs_lesion_maps():
        return torch.zeros(len(images), len(LESIONS))
    try:
        from multitask_dr.attribution import ablate_lesion_maps, encode
    except ImportError:
        return None
    evidence = encode(model, images)
    return ablate_lesion_maps(model, evidence, include_all=False).effect.float().cpu()


def grade_trained(model: LightningModule) -> bool:
    """Whether ``model``'s grade head was trained (models without the record count as trained)."""
    trained = getattr(model, "trained", None)
    return trained("grade") if callable(trained) else True


def grade_fields(grade_probs: np.ndarray | None) -> dict[str, Any]:
    """Predicted grade, its name, probabilities and expected grade of one image.

    ``None`` (an untrained grade head) gives the same keys, all ``None``.
    """
    if grade_probs is None:
        return dict.fromkeys(("grade", "grade_name", "grade_probabilities", "expected_grade"))
    grade = int(grade_probs.argmax())
    return {
        "grade": grade,
        "grade_name": GRADE_NAMES[grade],
        "grade_probabilities": [round(float(p), 6) for p in grade_probs],
        "expected_grade": float(expected_grade(torch.as_tensor(grade_probs, dtype=torch.float64))),
    }


def _optional(values: Tensor | None, index: int) -> list[float | None]:
    if values is None:
        return [None] * len(LESIONS)
    return [float(v) for v in values[index]]


# ---------------------------------------------------------------------------- the writer
class PredictionWriter(BasePredictionWriter):
    """Write lesion masks, overlays, a JSON report per image and a CSV summary (see module).

    The CLI always attaches one for ``predict`` (configure it under ``prediction:``); a
    ``PredictionWriter`` in ``trainer.callbacks`` replaces the CLI's.

    Args:
        output_dir: Where to write (``None``: ``predictions/<name of data.predict_dir>``).
        threshold: Lesion probability above which a pixel is a lesion (the metrics use 0.5).
        overlay_alpha: Fill opacity of the lesions in the overlay.
        overlay_max_side: Longer side of the overlay PNG (``None``: the original size).
        lesion_effects: Report each lesion's effect on the expected grade by ablation (one
            more encoder pass per image).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        threshold: float = 0.5,
        overlay_alpha: float = 0.45,
        overlay_max_side: int | None = 1024,
        lesion_effects: bool = True,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.threshold = threshold
        self.overlay_alpha = overlay_alpha
        self.overlay_max_side = overlay_max_side
        self.lesion_effects = lesion_effects
        self.out: Path | None = None
        self.rows: list[dict[str, Any]] = []
        self.grades = True

    def resolve_output_dir(self, trainer: Trainer) -> Path:
        """``output_dir``, or ``predictions/<predict_dir name>``."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        loaders = trainer.predict_dataloaders
        loader = loaders[0] if isinstance(loaders, Sequence) else loaders
        root = getattr(getattr(loader, "dataset", None), "root", None)
        return Path("predictions") / (Path(root).name if root is not None else "images")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Create the output folder."""
        self.out = self.resolve_output_dir(trainer)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.grades = grade_trained(pl_module)
        if not self.grades:
            rank_zero_warn(
                "predict: this model's fit had no graded image, so its grade head is untrained: "
                "grades, contributions and effects are left empty"
            )

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write every image of the batch; a failing image is reported and skipped."""
        lesion_probs = prediction["lesion_probs"].float().cpu().numpy()
        # An untrained grade head: no grade, and nothing measured against it.
        grade_probs = logit = effects = None
        if self.grades:
            grade_probs = prediction["grade_probs"].float().cpu()
            contributions = prediction.get("contributions")
            if contributions is not None:
                logit = logit_contributions(contributions, grade_probs)
            if self.lesion_effects:
                effects = lesion_effects(pl_module, batch["image"])
        for i, name in enumerate(batch["name"]):
            row: dict[str, Any] = {"name": name, "path": batch["path"][i], "error": ""}
            error = batch["error"][i]
            if not error:
                try:
                    row |= self.write_one(
                        name,
                        Path(batch["path"][i]),
                        lesion_probs[i],
                        None if grade_probs is None else grade_probs[i].numpy(),
                        _optional(logit, i),
                        _optional(effects, i),
                        tuple(batch["original_size"][i].tolist()),
                        tuple(batch["crop_box"][i].tolist()),
                    )
                except (DataError, OSError, ValueError, cv2.error) as exc:
                    error = f"{batch['path'][i]}: {exc}"
                    log.warning("predict: cannot write %s", error)
            # Unreadable files were already reported by the dataset; all are listed at the end.
            row["error"] = error
            self.rows.append(row)

    def write_one(
        self,
        name: str,
        path: Path,
        lesion_probs: np.ndarray,
        grade_probs: np.ndarray | None,
        logit: list[float | None],
        effects: list[float | None],
        original_size: tuple[int, int],
        box: tuple[int, int, int, int],
    ) -> dict[str, Any]:
        """Write one image's mask, overlay and report; return its summary row."""
        assert self.out is not None
        probs = restore_geometry(lesion_probs, original_size, box)  # type: ignore[arg-type]
        image = read_image(path)
        fov = image.max(axis=2) > FOV_THRESHOLD
        if fov.any():
            # No lesion outside the retina: the black surround only holds noise and vignetting.
            probs *= fov
        fov_area = int(fov.sum()) or fov.size
        index = release_index_mask(probs, self.threshold)
        stats = lesion_statistics(probs > self.threshold, probs)
        files = {"mask": f"{name}_lesions.png", "overlay": f"{name}_overlay.png"}
        release_palette_image(index).save(self.out / files["mask"])
        Image.fromarray(overlay(image, index, self.overlay_alpha, self.overlay_max_side)).save(
            self.out / files["overlay"]
        )
        lesions = {}
        for c, lesion in enumerate(LESIONS):
            lesions[lesion] = stats[lesion] | {
                "area_fraction_of_fov": stats[lesion]["area_px"] / fov_area,
                "logit_contribution": logit[c],
                "grade_effect": effects[c],
            }
        report = {
            "image": str(path),
            "name": name,
            "height": original_size[0],
            "width": original_size[1],
            **grade_fields(grade_probs),
            "threshold": self.threshold,
            "lesions": lesions,
            "files": files,
        }
        (self.out / f"{name}.json").write_text(json.dumps(report, indent=2))
        row: dict[str, Any] = {k: report[k] for k in ("grade", "grade_name", "expected_grade")}
        probabilities = report["grade_probabilities"] or [None] * NUM_GRADES
        row |= {f"p{g}": p for g, p in enumerate(probabilities)}
        for lesion, values in lesions.items():
            for key in ("area_px", "count", "logit_contribution", "grade_effect"):
                row[f"{lesion}_{key}"] = values[key]
        return row | {"mask": files["mask"], "overlay": files["overlay"], "report": f"{name}.json"}

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather every process's rows and write ``summary.csv`` (rank zero)."""
        rows = self.rows
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        if not trainer.is_global_zero or self.out is None:
            return
        # DistributedSampler pads uneven folders by repeating images: keep each name once.
        unique = {row["name"]: row for row in rows}
        rows = [unique[name] for name in sorted(unique)]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with (self.out / "summary.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
        failed = [row for row in rows if row["error"]]
        rank_zero_info(
            f"predict: wrote {len(rows) - len(failed)} image(s) to {self.out} "
            f"(summary.csv){f', skipped {len(failed)}' if failed else ''}"
        )
        for row in failed:
            rank_zero_info(f"  skipped {row['error']}")
