"""Checkpoints written before ``model.network`` (flat network hyper-parameters) still load.

``old_checkpoint.json`` is a frozen copy of what such a checkpoint held: its hyper-parameters
and the names and shapes of its weights. The weights themselves come from a current model of
the same network (the names did not change, which the test checks first).
"""

import json
from pathlib import Path

import lightning
import torch

from multitask_dr.checkpoints import nest_network_hyperparameters
from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR

OLD = json.loads((Path(__file__).parent / "old_checkpoint.json").read_text())
NETWORK_FIELDS = set(NetworkConfig.__dataclass_fields__)


def old_checkpoint(path: Path, hparams: dict) -> tuple[str, MultiTaskDR]:
    """An old-layout checkpoint at ``path`` and the current model whose weights it holds."""
    network = {k: v for k, v in hparams.items() if k in NETWORK_FIELDS}
    torch.manual_seed(0)
    model = MultiTaskDR(network=NetworkConfig(**network)).eval()
    # Old checkpoints predate the training record (a buffer, not a weight).
    state = {k: v for k, v in model.state_dict().items() if k != "trained_steps"}
    shapes = {k: list(v.shape) for k, v in state.items()}
    assert shapes == OLD["state_dict_shapes"]  # weight names and shapes are unchanged
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return str(path), model


def test_flat_network_hyperparameters_are_nested():
    nested = nest_network_hyperparameters(OLD["hyper_parameters"], NETWORK_FIELDS)
    assert nested["network"]["conditioning"] == "bottleneck"
    assert nested["network"]["bottleneck_combine"] == "max"
    assert not NETWORK_FIELDS & (set(nested) - {"network"})
    assert nested["lr"] == OLD["hyper_parameters"]["lr"]
    assert nest_network_hyperparameters(nested, NETWORK_FIELDS) is None  # already current


def test_old_checkpoint_loads_with_its_network_and_weights(tmp_path):
    path, model = old_checkpoint(tmp_path / "old.ckpt", OLD["hyper_parameters"])
    loaded = MultiTaskDR.load_from_checkpoint(path, map_location="cpu").eval()
    assert loaded.net.config == NetworkConfig(
        **{k: v for k, v in OLD["hyper_parameters"].items() if k in NETWORK_FIELDS}
    )
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(image)["grade_probs"], model(image)["grade_probs"])
    # Its training history is unknown: both heads count as trained (predict reports grades).
    assert loaded.trained("seg") and loaded.trained("grade")
    # Saved again, it is a current checkpoint: the network is one plain dict.
    assert loaded.hparams["network"]["grade_output"] == "coral"
    assert "conditioning" not in loaded.hparams


def test_old_checkpoint_written_by_the_cli_loads(tmp_path):
    # LightningCLI records how to rebuild the model; the old keys go through jsonargparse then.
    hparams = OLD["hyper_parameters"] | {
        "_instantiator": "lightning.pytorch.cli.instantiate_module"
    }
    path, model = old_checkpoint(tmp_path / "cli.ckpt", hparams)
    loaded = MultiTaskDR.load_from_checkpoint(path, map_location="cpu").eval()
    assert loaded.net.config.conditioning == "bottleneck"
    assert isinstance(loaded.net.config, NetworkConfig)
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(image)["grade_probs"], model(image)["grade_probs"])


def test_old_checkpoint_is_an_ensemble_member(tmp_path):
    path, model = old_checkpoint(tmp_path / "member.ckpt", OLD["hyper_parameters"])
    network = {k: v for k, v in OLD["hyper_parameters"].items() if k in NETWORK_FIELDS}
    ensemble = MultiTaskDR(network=NetworkConfig(**network), ensemble_checkpoints=[path])
    assert ensemble.members[0].net.config.grade_output == "coral"
