"""The multitask network: one smp encoder, an smp lesion decoder and a grade head."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import Tensor, nn

from multitask_dr.lesions import NUM_GRADES, NUM_LESIONS
from multitask_dr.models.heads import Combine, Conditioning, GradeHead
from multitask_dr.models.ordinal import GradeOutput
from multitask_dr.models.pretrained import has_offline_imagenet, load_offline_imagenet

DECODERS: dict[str, str] = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
}


def build_segmentation_model(
    decoder: str,
    encoder_name: str,
    encoder_weights: str | None,
    num_lesions: int,
    decoder_channels: Sequence[int] | None = None,
) -> smp.base.SegmentationModel:
    """An smp model whose encoder, decoder and segmentation head we reuse.

    Args:
        decoder: ``unet``, ``unetplusplus``, ``fpn`` or ``deeplabv3plus``.
        encoder_name: Any smp encoder, including timm's ``tu-*``.
        encoder_weights: ``imagenet`` or another smp weights name, or ``None`` for random
            initialisation. For the encoders of
            :data:`~multitask_dr.models.pretrained.OFFLINE_IMAGENET` (``tu-efficientnet_lite0``)
            ``imagenet`` is read from an installed package, never downloaded; every other
            name goes to smp, which downloads it (needs the network or a filled HF cache).
        num_lesions: Output channels of the lesion maps.
        decoder_channels: Decoder widths for Unet/Unet++ (``None``: smp's default).
    """
    key = decoder.lower().replace("_", "").replace("-", "").replace("+", "plus")
    if key not in DECODERS:
        raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}")
    kwargs: dict[str, object] = {}
    if decoder_channels is not None and key in ("unet", "unetplusplus"):
        kwargs["decoder_channels"] = list(decoder_channels)
    offline = has_offline_imagenet(encoder_name, encoder_weights)
    if encoder_weights is not None and not offline and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RuntimeError(
            f"encoder_weights={encoder_weights!r} needs a download but HF_HUB_OFFLINE=1; use "
            "encoder_weights=null with encoder_checkpoint=<local file> instead"
        )
    model = smp.create_model(
        DECODERS[key],
        encoder_name=encoder_name,
        encoder_weights=None if offline else encoder_weights,
        classes=num_lesions,
        **kwargs,
    )
    if offline:
        load_offline_imagenet(model.encoder, encoder_name)
    return model


def load_encoder_checkpoint(encoder: nn.Module, path: str | Path) -> None:
    """Load a local state dict into the encoder (keys may carry an ``encoder.`` prefix).

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        RuntimeError: When no key matches the encoder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"encoder checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    for prefix in ("model.encoder.", "net.encoder.", "encoder."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            break
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if len(missing) == len(encoder.state_dict()):
        raise RuntimeError(
            f"{path}: no parameter matches the encoder (unexpected: {unexpected[:5]})"
        )


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that shapes the network, under one name each from YAML to the module using it.

    The task takes it as ``model.network`` (``network: {encoder: resnet18, conditioning:
    stats}``); :class:`MultiTaskNet` builds from it, and the grade head's arguments carry the
    same names.

    Attributes:
        encoder: smp encoder name (``resnet18``, ``efficientnet-b0``, ``tu-test_resnet``, ...).
        decoder: ``unet``, ``unetplusplus``, ``fpn`` or ``deeplabv3plus``.
        encoder_weights: ``imagenet`` or another smp weights name, or ``None`` (random). For
            ``tu-efficientnet_lite0``, ``imagenet`` loads offline from the ``pretrained``
            extra's package (see :func:`build_segmentation_model`); for other encoders smp
            downloads it.
        encoder_checkpoint: Local state-dict file loaded into the encoder (offline pretraining).
        decoder_channels: Decoder widths for Unet/Unet++ (``None``: smp's default).
        conditioning: How the grade head sees the lesion maps: ``none``, ``stats``,
            ``lesion_pooled`` or ``bottleneck`` (see :mod:`multitask_dr.models.heads`).
        grade_output: ``softmax`` or ``coral`` (ordinal cumulative link).
        detach_lesions: Stop the grade loss's gradient into the lesion maps, so lesion maps are
            shaped by segmentation labels only and stay lesion maps.
        head_hidden: Grade head MLP width.
        head_dropout: Grade head dropout.
        bottleneck_combine: How the ``bottleneck`` head combines the lesions' evidence: ``sum``
            (additive; logits decompose exactly into per-lesion contributions) or ``max`` (smooth
            maximum: the most severe lesion decides, as in ICDR; explained by ablation).
    """

    encoder: str = "resnet18"
    decoder: str = "unet"
    encoder_weights: str | None = None
    encoder_checkpoint: str | None = None
    decoder_channels: list[int] | None = None
    conditioning: Conditioning = "none"
    grade_output: GradeOutput = "softmax"
    detach_lesions: bool = True
    head_hidden: int = 128
    head_dropout: float = 0.2
    bottleneck_combine: Combine = "sum"

    @classmethod
    def coerce(cls, value: NetworkConfig | Mapping[str, Any]) -> NetworkConfig:
        """``value`` itself, or the config a mapping of its fields describes.

        A checkpoint stores the config as a plain dict (it loads with ``weights_only``), and
        ``load_from_checkpoint`` hands that dict back to the task.
        """
        return value if isinstance(value, cls) else cls(**value)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The settings' names, as a config's ``model.network`` (and old flat keys) spell them."""
        return frozenset(field.name for field in fields(cls))

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain values (what hyper-parameters and checkpoints store)."""
        return asdict(self)


class MultiTaskNet(nn.Module):
    """Shared encoder, lesion decoder (4 sigmoid maps) and a grade head.

    Args:
        config: The network's settings (see :class:`NetworkConfig`).
        num_lesions: Lesion channels.
        num_grades: Grades.
    """

    def __init__(
        self,
        config: NetworkConfig = NetworkConfig(),  # noqa: B008 - frozen, so sharing it is safe
        num_lesions: int = NUM_LESIONS,
        num_grades: int = NUM_GRADES,
    ) -> None:
        super().__init__()
        self.config = config
        model = build_segmentation_model(
            config.decoder,
            config.encoder,
            config.encoder_weights,
            num_lesions,
            config.decoder_channels,
        )
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.segmentation_head = model.segmentation_head
        if config.encoder_checkpoint:
            load_encoder_checkpoint(self.encoder, config.encoder_checkpoint)
        self.detach_lesions = config.detach_lesions
        self.grade_head = GradeHead(
            self.encoder.out_channels[-1],
            num_lesions,
            num_grades,
            conditioning=config.conditioning,
            grade_output=config.grade_output,
            head_hidden=config.head_hidden,
            head_dropout=config.head_dropout,
            bottleneck_combine=config.bottleneck_combine,
        )

    def lesion_logits(self, image: Tensor) -> Tensor:
        """Lesion maps only (encoder, decoder, segmentation head), for sliding windows."""
        return self.segmentation_head(self.decoder(self.encoder(image)))

    def needs_lesion_maps(self) -> bool:
        """Whether the grade head reads the lesion maps (every conditioning but ``none``)."""
        return self.grade_head.conditioning != "none"

    def forward(
        self, image: Tensor, lesions: bool = True, lesion_maps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Run all parts.

        Args:
            image: ``(B, 3, H, W)`` normalised images.
            lesions: Compute the lesion maps. ``False`` skips the decoder when the grade head
                does not read the maps (``conditioning="none"``): a grading-only batch then
                costs the encoder and the head only. Ignored when the head needs the maps.
            lesion_maps: ``(B, L, H, W)`` maps in ``[0, 1]`` for the grade head to read
                instead of the predicted ones (teacher forcing with annotated masks); the
                predicted ``lesion_logits`` are still returned.

        Returns:
            ``lesion_logits`` ``(B, L, H, W)`` (absent when skipped), ``grade_logits``, and
            ``contributions`` ``(B, L, ·)`` when the head decomposes exactly.
        """
        features = self.encoder(image)
        if not lesions and not self.needs_lesion_maps():
            deep = features[-1]
            # The "none" head ignores the maps argument, so no placeholder maps are built.
            grade_logits, _ = self.grade_head(deep.mean(dim=(2, 3)), deep, deep[:, :0])
            return {"grade_logits": grade_logits}
        lesion_logits = self.segmentation_head(self.decoder(features))
        probs = torch.sigmoid(lesion_logits)
        if self.detach_lesions:
            probs = probs.detach()
        if lesion_maps is not None:
            probs = lesion_maps.to(probs.dtype)
        deep = features[-1]
        grade_logits, contributions = self.grade_head(deep.mean(dim=(2, 3)), deep, probs)
        out = {"lesion_logits": lesion_logits, "grade_logits": grade_logits}
        if contributions is not None:
            out["contributions"] = contributions
        return out

    def grade_from_lesions(
        self, features: Sequence[Tensor], probs: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Re-run only the grade head on given encoder features and (edited) lesion maps.

        Attribution edits the lesion maps (erase a lesion type or one instance, interpolate for
        integrated gradients) and re-grades many times; this keeps the encoder and decoder out
        of that loop. With the maps :meth:`forward` computes it returns the same grade logits.

        Args:
            features: Encoder feature maps, as ``self.encoder(image)`` returns them.
            probs: ``(B, L, H, W)`` lesion probabilities in ``[0, 1]`` (not detached here, so
                gradients with respect to the maps are available).

        Returns:
            ``grade_logits`` and ``contributions`` (``None`` unless the head is ``bottleneck``).
        """
        deep = features[-1]
        return self.grade_head(deep.mean(dim=(2, 3)), deep, probs)
