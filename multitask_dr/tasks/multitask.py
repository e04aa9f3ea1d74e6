"""The one task: joint lesion segmentation and DR grading.

It owns the losses, the metrics and the logging, and builds its network from plain
hyper-parameters in ``configure_*`` methods so a checkpoint reloads from its own config.

Batches are dicts with ``image`` and whichever labels the source has: ``mask`` (lesion maps,
``255`` = not scored) and/or ``grade`` (``-1`` = unknown). A training batch from
:class:`~multitask_dr.datamodules.joint.JointDataModule` is a dict of such batches, one per
source; each source is run through the network at its own resolution and the losses are summed.

Metric rules (see README, "Metrics"): per-lesion Dice and IoU are computed from true/false
positives accumulated over the whole evaluation set at threshold 0.5; a lesion type absent from
both the labels and the predictions of the whole set scores NaN and is left out of the mean.
AUPR is average precision over 200 thresholds (``BinnedAveragePrecision``: torchmetrics' value,
computed from histograms because torchmetrics' own is too slow for pixel maps); a lesion type
with no positive pixel scores NaN and is left out of the mean. ``val/score`` (used for checkpoint
selection) is the mean of the headline metrics available: lesion mAUPR and grade QWK.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from lightning import Callback, LightningModule
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassRecall,
    MultilabelStatScores,
)

from multitask_dr.checkpoints import check_checkpoint
from multitask_dr.lesions import IGNORE_INDEX, LESIONS, NUM_GRADES, NUM_LESIONS
from multitask_dr.models.heads import Combine, Conditioning
from multitask_dr.models.inference import sliding_window
from multitask_dr.models.network import MultiTaskNet
from multitask_dr.models.ordinal import GradeOutput, grade_loss, grade_probabilities
from multitask_dr.seeding import StepSeed
from multitask_dr.tasks.metrics import BinnedAveragePrecision

LossWeighting = Literal["fixed", "uncertainty"]

TestTimeAugmentation = Literal["none", "flips", "dihedral"]


@dataclass(frozen=True)
class Mixup:
    """One mixup draw: each image ``i`` becomes ``weight * x[i] + (1 - weight) * x[partner[i]]``."""

    weight: float
    partner: Tensor

    def apply(self, images: Tensor) -> Tensor:
        """Blend ``images`` ``(B, ...)`` with their partners."""
        return self.weight * images + (1 - self.weight) * images[self.partner]


def tta_views(image: Tensor, tta: TestTimeAugmentation) -> list[Tensor]:
    """The views of ``(B, 3, H, W)`` images that test-time augmentation averages over.

    ``none``: the image; ``flips``: plus horizontal, vertical and both flips (4 views);
    ``dihedral``: those 4 and their transposes, i.e. all 8 rotations/reflections of the square.
    A fundus photograph has no preferred orientation, so every view is a plausible input.
    """
    if tta not in ("none", "flips", "dihedral"):
        raise ValueError(f"tta must be none, flips or dihedral, got {tta!r}")
    if tta == "none":
        return [image]
    views = [image, image.flip(-1), image.flip(-2), image.flip(-2, -1)]
    if tta == "dihedral":
        views += [view.transpose(-2, -1) for view in views]
    return views


def split_sources(batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{source: batch}`` for a joint batch, ``{"batch": batch}`` for a single-source one."""
    if "image" in batch:
        return {"batch": batch}
    return {name: part for name, part in batch.items() if part is not None}


def lesion_scores(prefix: str, stats: Metric, aupr: Metric) -> dict[str, Tensor]:
    """Per-lesion and mean Dice, IoU and AUPR from accumulated metrics (the NaN rule above).

    Args:
        prefix: Key prefix, e.g. ``val/seg`` or ``test/seg/heimed``.
        stats: A ``MultilabelStatScores(average=None)``: per lesion tp, fp, tn, fn, support.
        aupr: The matching :class:`BinnedAveragePrecision`.
    """
    counts = stats.compute().float()
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 3]
    dice = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), torch.nan)
    iou = torch.where(tp + fp + fn > 0, tp / (tp + fp + fn), torch.nan)
    precision = torch.where(tp + fn > 0, aupr.compute().float(), torch.nan)
    results: dict[str, Tensor] = {}
    for name, values in (("dice", dice), ("iou", iou), ("aupr", precision)):
        for lesion, value in zip(LESIONS, values, strict=True):
            results[f"{prefix}/{name}_{lesion}"] = value
        results[f"{prefix}/{name}_mean"] = values.nanmean()
    return results


class MultiTaskDR(LightningModule):
    """Lesion segmentation + DR grading with a shared encoder.

    Args:
        encoder: smp encoder name (``resnet18``, ``efficientnet-b0``, ``tu-test_resnet``, ...).
        decoder: ``unet``, ``unetplusplus``, ``fpn`` or ``deeplabv3plus``.
        encoder_weights: ``imagenet`` or another smp weights name, or ``None`` (random). For
            ``tu-efficientnet_lite0``, ``imagenet`` loads offline from the ``pretrained``
            extra's package; for other encoders smp downloads it.
        encoder_checkpoint: Local state-dict file for the encoder (offline pretraining).
        decoder_channels: Decoder widths for Unet/Unet++ (``None``: smp's default).
        conditioning: Grade head conditioning: ``none``, ``stats``, ``lesion_pooled`` or
            ``bottleneck`` (see ``multitask_dr.models.heads``).
        grade_output: ``softmax`` or ``coral`` (ordinal cumulative link).
        detach_lesions: Stop the grade loss's gradient into the lesion maps.
        head_hidden: Grade head MLP width.
        head_dropout: Grade head dropout.
        bottleneck_combine: How the ``bottleneck`` head combines the lesions' evidence: ``sum``
            (additive; logits decompose exactly into per-lesion contributions) or ``max`` (smooth
            maximum: the most severe lesion decides, as in ICDR; explained by ablation).
        teacher_forcing: Share of training batches with masks and grades (phantoms) whose grade
            head reads the annotated lesion maps instead of the predicted ones, so the head
            learns the lesion -> grade rule from clean maps while the decoder still learns
            from the masks. Evaluation always reads the predicted maps.
        seg_weight: Weight of the segmentation loss (``fixed`` weighting).
        grade_weight: Weight of the grading loss (``fixed`` weighting).
        loss_weighting: ``fixed`` or ``uncertainty`` (learned per-task log variances,
            Kendall et al. 2018).
        dice_weight: Share of Dice in the segmentation loss (the rest is BCE).
        pos_weight: BCE weight of lesion pixels (lesions are a tiny share of the image).
        grade_class_weights: Per-grade loss weights (focal alpha), or ``None``.
        label_smoothing: Cross-entropy label smoothing.
        focal_gamma: Focal-loss exponent for grading (0 = cross-entropy).
        sord_scale: If positive, grading cross-entropy against soft ordinal (SORD) targets
            ``softmax(-sord_scale * (k - grade)²)`` instead of one-hot ones (softmax output only).
        mixup_alpha: If positive, training batches of grading-only sources (no masks) are mixed
            up (Zhang et al. 2018): each image is blended with another of the batch by a weight
            drawn from ``Beta(alpha, alpha)`` and the grade loss is blended alike. Batches with
            lesion masks are never mixed (a blended lesion map has no meaning for a grade).
        lr: Peak learning rate (AdamW).
        encoder_lr: Peak learning rate of the encoder (``None``: ``lr``). Lower than ``lr``
            fine-tunes pretrained weights gently while the new decoder and head learn fast.
        weight_decay: AdamW weight decay.
        warmup_epochs: Linear warm-up epochs before cosine decay.
        eval_window: Evaluate lesion maps of images larger than this by sliding windows of
            ``eval_window``² (train on patches of that size); ``None``: one pass.
        eval_overlap: Overlap between neighbouring evaluation windows, in ``[0, 1)``.
        tta: Test-time augmentation of the grade in validation, test and predict: ``none``,
            ``flips`` (average grade probabilities over 4 flips) or ``dihedral`` (8 views).
            Lesion maps, contributions and the logged loss come from the plain view.
        ensemble_checkpoints: Checkpoints of further trained models (same task) whose grade
            and lesion probabilities are averaged with this model's in validation, test and
            predict (a deep ensemble; evaluation only: members are not trained). Members use
            this model's ``tta`` and ``eval_window``. Logged losses, contributions and
            attributions are this model's own.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        decoder: str = "unet",
        encoder_weights: str | None = None,
        encoder_checkpoint: str | None = None,
        decoder_channels: list[int] | None = None,
        conditioning: Conditioning = "none",
        grade_output: GradeOutput = "softmax",
        detach_lesions: bool = True,
        head_hidden: int = 128,
        head_dropout: float = 0.2,
        bottleneck_combine: Combine = "sum",
        teacher_forcing: float = 0.0,
        seg_weight: float = 1.0,
        grade_weight: float = 1.0,
        loss_weighting: LossWeighting = "fixed",
        dice_weight: float = 0.5,
        pos_weight: float = 1.0,
        grade_class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        focal_gamma: float = 0.0,
        sord_scale: float = 0.0,
        mixup_alpha: float = 0.0,
        lr: float = 1e-3,
        encoder_lr: float | None = None,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 0,
        eval_window: int | None = None,
        eval_overlap: float = 0.25,
        tta: TestTimeAugmentation = "none",
        ensemble_checkpoints: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.configure_network()
        self.configure_losses()
        self.configure_metrics()
        self.configure_ensemble()

    # ------------------------------------------------------------------ building
    def configure_network(self) -> None:
        """Build the network from the hyper-parameters."""
        hp = self.hparams
        self.net = MultiTaskNet(
            encoder_name=hp.encoder,
            decoder=hp.decoder,
            encoder_weights=hp.encoder_weights,
            encoder_checkpoint=hp.encoder_checkpoint,
            decoder_channels=hp.decoder_channels,
            conditioning=hp.conditioning,
            grade_output=hp.grade_output,
            detach_lesions=hp.detach_lesions,
            head_hidden=hp.head_hidden,
            head_dropout=hp.head_dropout,
            bottleneck_combine=hp.bottleneck_combine,
        )

    def configure_ensemble(self) -> None:
        """Check the ``ensemble_checkpoints``; the members load on first evaluation.

        Loading waits because LightningCLI builds this module inside a context that hands its
        hyper-parameters to every ``save_hyperparameters`` call, a member's included. Members
        are kept out of the module tree on purpose: ``--ckpt_path`` then restores this model's
        own weights strictly, and a checkpoint saved from it holds one model.

        Raises:
            CheckpointError: When a member checkpoint is missing or not a readable checkpoint.
        """
        for path in self.hparams.ensemble_checkpoints or []:
            check_checkpoint(path, "ensemble checkpoint")
        self._members: list[MultiTaskDR] | None = None

    @property
    def members(self) -> list[MultiTaskDR]:
        """The ensemble's other models, frozen and in evaluation mode (loaded once)."""
        if self._members is None:
            hp = self.hparams
            self._members = [
                MultiTaskDR.load_from_checkpoint(
                    path,
                    map_location="cpu",
                    ensemble_checkpoints=None,
                    tta=hp.tta,
                    eval_window=hp.eval_window,
                    eval_overlap=hp.eval_overlap,
                )
                .eval()
                .requires_grad_(False)
                for path in hp.ensemble_checkpoints or []
            ]
        return self._members

    def configure_losses(self) -> None:
        """Dice + BCE for lesions, (focal) cross-entropy or CORAL for grades."""
        hp = self.hparams
        self.dice_loss = smp.losses.DiceLoss(
            "multilabel", from_logits=True, ignore_index=IGNORE_INDEX
        )
        if hp.sord_scale > 0 and hp.grade_output != "softmax":
            raise ValueError("sord_scale needs grade_output: softmax (SORD targets a distribution)")
        if hp.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0, got {hp.mixup_alpha}")
        weights = hp.grade_class_weights
        if weights is not None and len(weights) != NUM_GRADES:
            raise ValueError(f"grade_class_weights needs {NUM_GRADES} values, got {len(weights)}")
        self.register_buffer(
            "grade_class_weights",
            None if weights is None else torch.tensor(weights, dtype=torch.float32),
            persistent=False,
        )
        # Learned log-variances; unused (and frozen) under fixed weighting.
        self.log_vars = nn.Parameter(
            torch.zeros(2), requires_grad=hp.loss_weighting == "uncertainty"
        )

    def configure_metrics(self) -> None:
        """One metric set per evaluation stage (Lightning keeps their states apart)."""
        self.metrics = nn.ModuleDict()
        for stage in ("val", "test"):
            # validate_args=False: torchmetrics' input checks (torch.unique over every pixel, a
            # host sync on GPU) took 60 % of an update; masks are 0/1/IGNORE_INDEX by design.
            self.metrics[f"{stage}_seg_stats"] = MultilabelStatScores(
                NUM_LESIONS,
                threshold=0.5,
                average=None,
                ignore_index=IGNORE_INDEX,
                validate_args=False,
            )
            self.metrics[f"{stage}_seg_aupr"] = BinnedAveragePrecision(
                NUM_LESIONS, thresholds=200, ignore_index=IGNORE_INDEX
            )
            # Losses are averaged over every evaluation source here rather than with self.log,
            # which refuses one key logged from two dataloaders.
            self.metrics[f"{stage}_seg_loss"] = MeanMetric()
            self.metrics[f"{stage}_grade_loss"] = MeanMetric()
            self.metrics[f"{stage}_grade"] = MetricCollection(
                {
                    "acc": MulticlassAccuracy(NUM_GRADES, average="micro"),
                    "auc": MulticlassAUROC(NUM_GRADES, average="macro"),
                    "qwk": MulticlassCohenKappa(NUM_GRADES, weights="quadratic"),
                    "recall": MulticlassRecall(NUM_GRADES, average=None),
                    "confusion": MulticlassConfusionMatrix(NUM_GRADES),
                }
            )
        self.per_source = nn.ModuleDict()  # lesion metrics per source, see lesion_source
        self._seen: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ forward & losses
    def forward(
        self, image: Tensor, lesions: bool = True, lesion_maps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Network outputs plus ``lesion_probs`` and ``grade_probs``.

        Args:
            image: ``(B, 3, H, W)`` normalised images.
            lesions: ``False`` lets the network skip the decoder where the grade does not read
                the lesion maps (no ``lesion_logits``/``lesion_probs`` then).
            lesion_maps: Maps the grade head reads instead of the predicted ones (training
                with ``teacher_forcing``).
        """
        out = self.net(image, lesions=lesions, lesion_maps=lesion_maps)
        if "lesion_logits" in out:
            out["lesion_probs"] = torch.sigmoid(out["lesion_logits"])
        out["grade_probs"] = grade_probabilities(out["grade_logits"], self.hparams.grade_output)
        return out

    def segmentation_loss(self, logits: Tensor, mask: Tensor) -> Tensor:
        """Dice + BCE over scored pixels."""
        hp = self.hparams
        valid = mask != IGNORE_INDEX
        target = (mask == 1).float()
        bce = F.binary_cross_entropy_with_logits(
            logits,
            target,
            reduction="none",
            pos_weight=torch.tensor(hp.pos_weight, device=logits.device),
        )
        bce = (bce * valid).sum() / valid.sum().clamp_min(1)
        dice = self.dice_loss(logits, mask.long())
        return hp.dice_weight * dice + (1 - hp.dice_weight) * bce

    def combine(self, seg: Tensor | None, grade: Tensor | None) -> Tensor:
        """Weighted sum of the task losses that are present."""
        hp = self.hparams
        total = torch.zeros((), device=self.device)
        for i, (loss, weight) in enumerate(((seg, hp.seg_weight), (grade, hp.grade_weight))):
            if loss is None:
                continue
            if hp.loss_weighting == "uncertainty":
                total = total + torch.exp(-self.log_vars[i]) * loss + self.log_vars[i]
            else:
                total = total + weight * loss
        return total

    def grading_loss(self, logits: Tensor, grades: Tensor) -> Tensor:
        """The configured grading loss of ``logits`` against integer ``grades``."""
        hp = self.hparams
        return grade_loss(
            logits,
            grades,
            hp.grade_output,
            self.grade_class_weights,
            hp.label_smoothing,
            hp.focal_gamma,
            hp.sord_scale,
        )

    def source_losses(
        self, batch: dict[str, Any], out: dict[str, Tensor], mix: Mixup | None = None
    ) -> tuple[Tensor | None, Tensor | None]:
        """Segmentation and grading loss of one source batch (``None`` where unlabelled).

        Args:
            batch: One source's part of the batch.
            out: The network's outputs for it.
            mix: The mixup applied to this batch's images, if any (every image graded then).
        """
        seg = None
        if "mask" in batch:
            seg = self.segmentation_loss(out["lesion_logits"], batch["mask"])
        grade = None
        graded = batch["grade"] >= 0
        if mix is not None:
            logits = out["grade_logits"]
            grade = mix.weight * self.grading_loss(logits, batch["grade"]) + (
                1 - mix.weight
            ) * self.grading_loss(logits, batch["grade"][mix.partner])
        elif graded.any():
            grade = self.grading_loss(out["grade_logits"][graded], batch["grade"][graded])
        return seg, grade

    def draw_mixup(self, batch: dict[str, Any]) -> Mixup | None:
        """A mixup for a training batch, or ``None`` where it does not apply.

        Applies with ``mixup_alpha > 0`` to batches of two or more images that are all graded
        and carry no masks. Draws from torch's global generator, which the seed fixes.
        """
        alpha = self.hparams.mixup_alpha
        if alpha <= 0 or "mask" in batch or len(batch["image"]) < 2:
            return None
        if not bool((batch["grade"] >= 0).all()):
            return None
        weight = torch.distributions.Beta(alpha, alpha).sample().item()
        partner = torch.randperm(len(batch["image"]), device=batch["image"].device)
        return Mixup(weight=weight, partner=partner)

    def teacher_maps(self, batch: dict[str, Any]) -> Tensor | None:
        """Annotated lesion maps for the grade head, in a ``teacher_forcing`` share of batches.

        Only batches with both masks and grades qualify (phantoms), and only heads that read
        the maps. Unscored (``255``) pixels count as background.
        """
        p = self.hparams.teacher_forcing
        if p <= 0 or "mask" not in batch or not self.net.needs_lesion_maps():
            return None
        if not bool((batch["grade"] >= 0).any()) or torch.rand(()).item() >= p:
            return None
        return (batch["mask"] == 1).float()

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Sum the losses of every source in the batch."""
        seg_losses, grade_losses = [], []
        for name, part in split_sources(batch).items():
            # A batch without masks needs no lesion maps unless the grade reads them: the
            # decoder is skipped then (most of the cost of a grading-only step).
            mix = self.draw_mixup(part)
            image = part["image"] if mix is None else mix.apply(part["image"])
            out = self(image, lesions="mask" in part, lesion_maps=self.teacher_maps(part))
            seg, grade = self.source_losses(part, out, mix)
            size = len(part["image"])
            if seg is not None:
                seg_losses.append(seg)
                self.log(f"train/{name}/seg_loss", seg, batch_size=size)
            if grade is not None:
                grade_losses.append(grade)
                self.log(f"train/{name}/grade_loss", grade, batch_size=size)
        seg = torch.stack(seg_losses).mean() if seg_losses else None
        grade = torch.stack(grade_losses).mean() if grade_losses else None
        loss = self.combine(seg, grade)
        self.log(
            "train/loss",
            loss,
            prog_bar=True,
            batch_size=len(next(iter(split_sources(batch).values()))["image"]),
        )
        return loss

    def evaluation_forward(self, image: Tensor) -> dict[str, Tensor]:
        """Forward pass for evaluation.

        Lesion maps come by sliding window when the image is large; grade probabilities are
        averaged over the ``tta`` views, then over the ensemble members (if any).
        """
        out = self.single_evaluation_forward(image)
        if not self.members:
            return out
        outs = [out] + [m.to(image.device).single_evaluation_forward(image) for m in self.members]
        for key in ("grade_probs", "lesion_probs"):
            if all(key in o for o in outs):
                out[key] = torch.stack([o[key] for o in outs]).mean(dim=0)
        return out

    def single_evaluation_forward(self, image: Tensor) -> dict[str, Tensor]:
        """:meth:`evaluation_forward` of this model alone (sliding window, ``tta``)."""
        out = self(image)
        window = self.hparams.eval_window
        if window is not None and max(image.shape[-2:]) > window:
            logits = sliding_window(
                self.net.lesion_logits, image, window, self.hparams.eval_overlap
            )
            out["lesion_logits"] = logits
            out["lesion_probs"] = torch.sigmoid(logits)
        views = tta_views(image, self.hparams.tta)
        if len(views) > 1:
            # Average probabilities, not logits: CORAL's logits are cumulative, not per grade.
            extra = [self(view, lesions=False)["grade_probs"] for view in views[1:]]
            out["grade_probs"] = torch.stack([out["grade_probs"], *extra]).mean(dim=0)
        return out

    def lesion_source(self, dataloader_idx: int) -> str | None:
        """The lesion source an evaluation dataloader reads, when several are scored apart.

        A datamodule with several lesion sources names them in ``lesion_sources`` (in the order
        of its evaluation dataloaders); each then gets its own lesion metrics besides the pooled
        ones, e.g. ``test/seg/heimed/aupr_EX``.
        """
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        sources = getattr(datamodule, "lesion_sources", None) or []
        if len(sources) < 2 or dataloader_idx >= len(sources):
            return None
        return sources[dataloader_idx]

    def source_lesion_metrics(self, stage: str, source: str) -> nn.ModuleDict:
        """The lesion metrics of one source, made on first use (sources are known at run time)."""
        key = f"{stage}_{source}"
        if key not in self.per_source:
            self.per_source[key] = nn.ModuleDict(
                {
                    "stats": MultilabelStatScores(
                        NUM_LESIONS,
                        threshold=0.5,
                        average=None,
                        ignore_index=IGNORE_INDEX,
                        validate_args=False,
                    ),
                    "aupr": BinnedAveragePrecision(
                        NUM_LESIONS, thresholds=200, ignore_index=IGNORE_INDEX
                    ),
                }
            ).to(self.device)
        return self.per_source[key]

    def evaluate(
        self, batch: dict[str, Any], stage: str, dataloader_idx: int = 0
    ) -> dict[str, dict[str, Tensor]]:
        """Update the stage's metrics; return each source's outputs (for callbacks' media)."""
        outputs = {}
        lesion_source = self.lesion_source(dataloader_idx)
        for name, part in split_sources(batch).items():
            out = self.evaluation_forward(part["image"])
            outputs[name] = out
            seg, grade = self.source_losses(part, out)
            size = len(part["image"])
            seen = self._seen.setdefault(stage, set())
            if seg is not None:
                seen.add("seg")
                mask = part["mask"].long()
                self.metrics[f"{stage}_seg_stats"].update(out["lesion_probs"], mask)
                self.metrics[f"{stage}_seg_aupr"].update(out["lesion_probs"], mask)
                self.metrics[f"{stage}_seg_loss"].update(seg, weight=size)
                if lesion_source is not None:
                    for metric in self.source_lesion_metrics(stage, lesion_source).values():
                        metric.update(out["lesion_probs"], mask)
            graded = part["grade"] >= 0
            if grade is not None:
                seen.add("grade")
                self.metrics[f"{stage}_grade"].update(
                    out["grade_probs"][graded], part["grade"][graded]
                )
                self.metrics[f"{stage}_grade_loss"].update(grade, weight=int(graded.sum()))
        return outputs

    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, dict[str, Tensor]]:
        """Accumulate validation metrics; the outputs go to callbacks (e.g. ``WandbMedia``)."""
        return self.evaluate(batch, "val", dataloader_idx)

    def test_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, dict[str, Tensor]]:
        """Accumulate test metrics; the outputs go to callbacks (e.g. ``WandbMedia``)."""
        return self.evaluate(batch, "test", dataloader_idx)

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Lesion and grade probabilities (and contributions) for each image."""
        out = self.evaluation_forward(batch["image"])
        keep = ("lesion_probs", "grade_probs", "contributions")
        return {"name": batch.get("name")} | {k: v for k, v in out.items() if k in keep}

    # ------------------------------------------------------------------ epoch ends
    def compute_metrics(self, stage: str) -> dict[str, Tensor]:
        """Compute, name and reset the stage's metrics."""
        results: dict[str, Tensor] = {}
        seen = self._seen.pop(stage, set())
        if self._trainer is not None and self.trainer.world_size > 1:
            # Under DDP every process must call compute() (it all-gathers the states), also one
            # whose share of the data had no masks or no grades, or the others wait forever.
            strategy = self.trainer.strategy
            seen = {
                kind
                for kind in ("seg", "grade")
                if strategy.reduce_boolean_decision(kind in seen, all=False)
            }
        headline = []
        if "seg" in seen:
            pooled = (self.metrics[f"{stage}_seg_stats"], self.metrics[f"{stage}_seg_aupr"])
            results |= lesion_scores(f"{stage}/seg", *pooled)
            for key, pair in self.per_source.items():
                if key.startswith(f"{stage}_"):
                    source = key.removeprefix(f"{stage}_")
                    results |= lesion_scores(f"{stage}/seg/{source}", pair["stats"], pair["aupr"])
                    for metric in pair.values():
                        metric.reset()
            headline.append(results[f"{stage}/seg/aupr_mean"])
            results[f"{stage}/seg_loss"] = self.metrics[f"{stage}_seg_loss"].compute()
        if "grade" in seen:
            grade = self.metrics[f"{stage}_grade"].compute()
            for name in ("acc", "auc", "qwk"):
                results[f"{stage}/grade/{name}"] = grade[name].float()
            for g, value in enumerate(grade["recall"]):
                results[f"{stage}/grade/recall_{g}"] = value.float()
            self.confusion = grade["confusion"].detach().cpu()
            headline.append(results[f"{stage}/grade/qwk"])
            results[f"{stage}/grade_loss"] = self.metrics[f"{stage}_grade_loss"].compute()
        if headline:
            results[f"{stage}/score"] = torch.stack(headline).nanmean()
        for key, metric in self.metrics.items():
            if key.startswith(f"{stage}_"):
                metric.reset()
        return results

    def on_validation_epoch_end(self) -> None:
        """Log validation metrics."""
        self.log_dict(self.compute_metrics("val"))

    def on_test_epoch_end(self) -> None:
        """Log test metrics."""
        self.log_dict(self.compute_metrics("test"))

    def setup(self, stage: str) -> None:
        """Silence Lightning's advice to reduce epoch metrics, once a Trainer runs this task.

        The values come from torchmetrics' ``compute()``, which already all-gathers every
        process's state under DDP: Lightning's advice to add ``sync_dist=True`` (average
        per-process values) does not apply to them, and would print once per metric. Lightning
        emits it after the epoch-end hook returns, so it cannot be caught around ``log_dict``;
        the filter is installed here, when the task runs, rather than when it is imported.
        """
        warnings.filterwarnings(
            "ignore",
            message=r"It is recommended to use `self\.log\('(val|test)/",
            category=PossibleUserWarning,
        )

    def configure_callbacks(self) -> list[Callback]:
        """Per-step seeding: a resumed ``fit`` draws the dropout and mixing of a straight one."""
        return [StepSeed()]

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with linear warm-up then cosine decay, stepped per epoch."""
        hp = self.hparams
        encoder = list(self.net.encoder.parameters())
        encoder_ids = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if id(p) not in encoder_ids]
        groups = [
            {"params": encoder, "lr": hp.lr if hp.encoder_lr is None else hp.encoder_lr},
            {"params": rest, "lr": hp.lr},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        epochs = max(int(self.trainer.max_epochs or 1), 1) if self._trainer else 1
        warmup = min(hp.warmup_epochs, epochs - 1)

        def factor(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(epochs - warmup, 1)
            return 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
