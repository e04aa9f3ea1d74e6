"""The one task: joint lesion segmentation and DR grading (its batches: :mod:`.batches`).

Its other parts live beside it in :mod:`multitask_dr.tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

import torch
from lightning import Callback, LightningModule
from torch import Tensor, nn

from multitask_dr.checkpoints import upgrade_checkpoint
from multitask_dr.models.network import MultiTaskNet, NetworkConfig
from multitask_dr.models.ordinal import grade_probabilities
from multitask_dr.seeding import StepSeed
from multitask_dr.tasks.batches import lesion_source, split_sources
from multitask_dr.tasks.inference import Ensemble, TestTimeAugmentation, evaluate_image
from multitask_dr.tasks.logging import EvaluationMetricsLogger
from multitask_dr.tasks.losses import GradeLoss, LossWeighting, SegmentationLoss, combine_losses
from multitask_dr.tasks.metrics import StageMetrics
from multitask_dr.tasks.optimisation import warmup_cosine_adamw
from multitask_dr.tasks.regularisation import Mixup, draw_mixup, teacher_maps

#: The two tasks, as named in losses and logs.
TASKS = ("seg", "grade")
#: Settings that change only how a trained model is evaluated, not the model: ``validate``,
#: ``test`` and ``predict --ckpt_path`` take them from the command, not from the checkpoint, and
#: ensemble members follow the model's.
EVALUATION_SETTINGS = ("tta", "lesion_tta", "eval_window", "eval_overlap", "ensemble_checkpoints")


class MultiTaskDR(LightningModule):
    """Lesion segmentation + DR grading with a shared encoder.

    Args:
        network: The network (encoder, decoder, grade head): :class:`NetworkConfig`.
        teacher_forcing: Share of training batches with masks and grades whose grade head reads
            the annotated lesion maps (:func:`~multitask_dr.tasks.regularisation.teacher_maps`).
        seg_weight: Weight of the segmentation loss (``fixed`` weighting).
        grade_weight: Weight of the grading loss (``fixed`` weighting).
        loss_weighting: ``fixed`` or ``uncertainty`` (learned per-task log variances).
        dice_weight: Share of Dice in the segmentation loss (the rest is BCE).
        pos_weight: BCE weight of lesion pixels (lesions are a tiny share of the image).
        grade_class_weights: Per-grade loss weights (focal alpha), or ``None``.
        label_smoothing: Cross-entropy label smoothing.
        focal_gamma: Focal-loss exponent for grading (0 = cross-entropy).
        sord_scale: If positive, grading cross-entropy against soft ordinal (SORD) targets.
        mixup_alpha: If positive, training batches of grading-only sources are mixed up
            (:func:`~multitask_dr.tasks.regularisation.draw_mixup`); lesion batches never are.
        lr: Peak learning rate (AdamW).
        encoder_lr: Peak learning rate of the encoder (``None``: ``lr``).
        weight_decay: AdamW weight decay.
        warmup_epochs: Linear warm-up epochs before cosine decay.
        eval_window: Evaluate lesion maps of images larger than this by sliding windows of
            ``eval_window``² (train on patches of that size); ``None``: one pass.
        eval_overlap: Overlap between neighbouring evaluation windows, in ``[0, 1)``.
        tta: Test-time augmentation of the grade in evaluation: ``none``, ``flips`` (4 views) or
            ``dihedral`` (8); contributions and the loss are the plain view's.
        lesion_tta: Test-time augmentation of the lesion probability maps in evaluation and
            ``predict`` (same choices as ``tta``; each view costs one more segmentation pass).
        ensemble_checkpoints: Further trained models averaged with this one in evaluation
            (:class:`~.inference.Ensemble`; they follow this model's ``tta`` and ``eval_window``).
    """

    def __init__(
        self,
        network: NetworkConfig = NetworkConfig(),  # noqa: B008 - frozen, so sharing it is safe
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
        lesion_tta: TestTimeAugmentation = "none",
        ensemble_checkpoints: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Stored as plain values: a checkpoint then loads with ``weights_only`` (a checkpoint's
        # hyper-parameters come back as this dict, which NetworkConfig.coerce accepts).
        self.hparams["network"] = NetworkConfig.coerce(network).as_dict()
        self.configure_network()
        self.configure_losses()
        self.configure_metrics()
        self.configure_ensemble()
        # Training steps that had a lesion / a grading loss, kept in the checkpoint: ``predict``
        # then knows whether a head was ever trained (-1: a checkpoint from before this record).
        self.register_buffer("trained_steps", torch.zeros(len(TASKS), dtype=torch.long))

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path | IO[bytes], *args: Any, **kwargs: Any
    ) -> MultiTaskDR:
        """Lightning's loading, which also reads checkpoints with flat network settings.

        Checkpoints written before ``network`` was one setting hold its fields beside the
        task's; they are nested on the fly (:func:`~multitask_dr.checkpoints.upgrade_checkpoint`).
        """
        if isinstance(checkpoint_path, str | Path):
            names = NetworkConfig.field_names()
            checkpoint_path = upgrade_checkpoint(checkpoint_path, names) or checkpoint_path
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def configure_network(self) -> None:
        """Build the network from its one config."""
        self.net = MultiTaskNet(NetworkConfig.coerce(self.hparams.network))

    def configure_losses(self) -> None:
        """Dice + BCE for lesions, (focal, SORD) cross-entropy or CORAL for grades."""
        hp = self.hparams
        if hp.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0, got {hp.mixup_alpha}")
        self.seg_loss = SegmentationLoss(hp.dice_weight, hp.pos_weight)
        grading = (hp.grade_class_weights, hp.label_smoothing, hp.focal_gamma, hp.sord_scale)
        self.grade_loss = GradeLoss(self.net.config.grade_output, *grading)
        # Learned log-variances; unused (and frozen) under fixed weighting.
        self.log_vars = nn.Parameter(
            torch.zeros(2), requires_grad=hp.loss_weighting == "uncertainty"
        )

    def configure_metrics(self) -> None:
        """One metric set per evaluation stage (Lightning keeps their states apart)."""
        self.metrics = nn.ModuleDict({stage: StageMetrics(stage) for stage in ("val", "test")})

    def configure_ensemble(self) -> None:
        """The ``ensemble_checkpoints``: checked now, loaded on first evaluation (see Ensemble)."""
        hp = self.hparams
        # Members evaluate as this model does; they hold no members of their own.
        evaluation = {key: hp[key] for key in EVALUATION_SETTINGS} | {"ensemble_checkpoints": None}
        load = partial(MultiTaskDR.load_from_checkpoint, map_location="cpu", **evaluation)
        self.ensemble = Ensemble(hp.ensemble_checkpoints or [], load)

    @property
    def members(self) -> list[MultiTaskDR]:
        """The ensemble's other models, frozen and in evaluation mode."""
        return self.ensemble.members  # type: ignore[return-value]

    def configure_callbacks(self) -> list[Callback]:
        """Per-step seeding and evaluation metrics logged once each.

        :class:`~multitask_dr.seeding.StepSeed` and :class:`~.logging.EvaluationMetricsLogger`.
        """
        return [StepSeed(), EvaluationMetricsLogger()]

    def forward(
        self, image: Tensor, lesions: bool = True, lesion_maps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Network outputs (see :meth:`MultiTaskNet.forward`) plus their probabilities."""
        out = self.net(image, lesions=lesions, lesion_maps=lesion_maps)
        if "lesion_logits" in out:
            out["lesion_probs"] = torch.sigmoid(out["lesion_logits"])
        out["grade_probs"] = grade_probabilities(out["grade_logits"], self.net.config.grade_output)
        return out

    def combine(self, seg: Tensor | None, grade: Tensor | None) -> Tensor:
        """Weighted sum of the task losses that are present."""
        hp = self.hparams
        weights = (hp.seg_weight, hp.grade_weight)
        return combine_losses(seg, grade, weights, self.log_vars, hp.loss_weighting)

    def source_losses(
        self, batch: dict[str, Any], out: dict[str, Tensor], mix: Mixup | None = None
    ) -> tuple[Tensor | None, Tensor | None]:
        """Segmentation and grading loss of one source batch (``None`` where unlabelled)."""
        seg = self.seg_loss(out["lesion_logits"], batch["mask"]) if "mask" in batch else None
        return seg, self.grade_loss.of_batch(out["grade_logits"], batch["grade"], mix)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Sum the losses of every source in the batch."""
        hp, losses = self.hparams, {kind: [] for kind in TASKS}
        sources = split_sources(batch)
        for name, part in sources.items():
            mix = draw_mixup(part, hp.mixup_alpha)
            image = part["image"] if mix is None else mix.apply(part["image"])
            maps = teacher_maps(part, hp.teacher_forcing, self.net.needs_lesion_maps())
            # A batch without masks needs no lesion maps unless the grade reads them: the
            # decoder is skipped then (most of the cost of a grading-only step).
            out = self(image, lesions="mask" in part, lesion_maps=maps)
            seg_grade = self.source_losses(part, out, mix)
            for kind, loss in zip(TASKS, seg_grade, strict=True):
                if loss is not None:
                    losses[kind].append(loss)
                    self.log(f"train/{name}/{kind}_loss", loss, batch_size=len(image))
        for task, kind in enumerate(TASKS):
            if losses[kind] and self.trained_steps[task] >= 0:
                self.trained_steps[task] += 1
        seg, grade = (torch.stack(v).mean() if v else None for v in losses.values())
        loss = self.combine(seg, grade)
        size = len(next(iter(sources.values()))["image"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def trained(self, task: str) -> bool:
        """Whether ``task`` (``seg`` or ``grade``) had a loss in any training step so far.

        Checkpoints written before the record count as trained (their history is unknown).
        """
        return int(self.trained_steps[TASKS.index(task)]) != 0

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Mark checkpoints without the training record as of unknown history."""
        state = checkpoint.get("state_dict")
        if state is not None and "trained_steps" not in state:
            state["trained_steps"] = torch.full((len(TASKS),), -1, dtype=torch.long)

    def evaluation_forward(self, image: Tensor, reads: Sequence[Tensor] = ()) -> dict[str, Tensor]:
        """This model's evaluation outputs averaged with the ensemble members' (if any).

        Args:
            image: ``(B, 3, H, W)`` normalised images at the working size.
            reads: The same images read at further sizes (a batch's ``image_reads``, from a
                datamodule's ``eval_read_sizes``): their lesion maps join the average.
        """
        return self.ensemble.average(self.single_evaluation_forward(image, reads), image, reads)

    def single_evaluation_forward(
        self, image: Tensor, reads: Sequence[Tensor] = ()
    ) -> dict[str, Tensor]:
        """:meth:`evaluation_forward` of this model alone (sliding window, ``tta``, reads)."""
        hp = self.hparams
        return evaluate_image(
            self,
            self.net.lesion_logits,
            image,
            tta=hp.tta,
            window=hp.eval_window,
            overlap=hp.eval_overlap,
            lesion_tta=hp.lesion_tta,
            reads=reads,
        )

    def evaluate(
        self, batch: dict[str, Any], stage: str, dataloader_idx: int = 0
    ) -> dict[str, dict[str, Tensor]]:
        """Update the stage's metrics; return each source's outputs (for callbacks' media)."""
        outputs, metrics = {}, self.metrics[stage]
        source = lesion_source(self._trainer, dataloader_idx)
        for name, part in split_sources(batch).items():
            out = self.evaluation_forward(part["image"], part.get("image_reads", ()))
            outputs[name] = out
            metrics.update_source(part, out, self.source_losses(part, out), source)
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
        out = self.evaluation_forward(batch["image"], batch.get("image_reads", ()))
        keep = ("lesion_probs", "grade_probs", "contributions")
        return {"name": batch.get("name")} | {k: v for k, v in out.items() if k in keep}

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with linear warm-up then cosine decay, stepped per epoch."""
        hp = self.hparams
        epochs = int(self.trainer.max_epochs or 1) if self._trainer else 1
        return warmup_cosine_adamw(
            self.net.encoder, self, hp.lr, hp.encoder_lr, hp.weight_decay, epochs, hp.warmup_epochs
        )
