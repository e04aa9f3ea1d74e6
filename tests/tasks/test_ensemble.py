"""Deep ensembles at evaluation: ``MultiTaskDR(ensemble_checkpoints=[...])``."""

import pytest
import torch

from multitask_dr.errors import CheckpointError
from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR

from .conftest import TINY, save


def test_ensemble_averages_member_probabilities_with_its_own_tta(tmp_path):
    torch.manual_seed(0)
    first = MultiTaskDR(network=NetworkConfig(**TINY, conditioning="stats"), tta="flips").eval()
    torch.manual_seed(1)
    second = MultiTaskDR(network=NetworkConfig(**TINY, conditioning="stats"), tta="none").eval()
    path = save(second, tmp_path / "second.ckpt")
    torch.manual_seed(0)
    ensemble = MultiTaskDR(
        network=NetworkConfig(**TINY, conditioning="stats"),
        tta="flips",
        ensemble_checkpoints=[path],
    ).eval()
    ensemble.load_state_dict(first.state_dict())
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = ensemble.evaluation_forward(image)
        a = first.evaluation_forward(image)
        second.hparams.tta = "flips"  # members follow the ensemble's test-time augmentation
        b = second.evaluation_forward(image)
    assert ensemble.members[0].hparams.tta == "flips"
    assert not torch.allclose(a["grade_probs"], b["grade_probs"])
    assert torch.allclose(out["grade_probs"], (a["grade_probs"] + b["grade_probs"]) / 2)
    assert torch.allclose(out["lesion_probs"], (a["lesion_probs"] + b["lesion_probs"]) / 2)
    # Members stay out of the module tree: the ensemble's checkpoint holds one model.
    assert ensemble.state_dict().keys() == first.state_dict().keys()
    assert not any(p.requires_grad for p in ensemble.members[0].parameters())


def test_missing_or_foreign_ensemble_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(CheckpointError, match=r"nope\.ckpt: ensemble checkpoint not found"):
        MultiTaskDR(network=NetworkConfig(**TINY), ensemble_checkpoints=[str(missing)])
    weights = tmp_path / "weights.pt"
    torch.save({"encoder.weight": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match=r"weights\.pt: a PyTorch file but not a Lightning"):
        MultiTaskDR(network=NetworkConfig(**TINY), ensemble_checkpoints=[str(weights)])
