"""Decoder skipping for grading-only batches and test-time averaging of grades and lesion maps."""

import pytest
import torch

from multitask_dr.models.network import MultiTaskNet, NetworkConfig
from multitask_dr.tasks.inference import tta_views, undo_view
from multitask_dr.tasks.multitask import MultiTaskDR

from .conftest import TINY


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_decoder_is_skipped_only_when_the_grade_ignores_lesion_maps():
    torch.manual_seed(0)
    image = torch.randn(2, 3, 32, 32)
    net = MultiTaskNet(
        NetworkConfig(encoder="tu-test_resnet", decoder_channels=[16, 16, 8, 8, 8])
    ).eval()
    calls = count_calls(net.decoder)
    full = net(image)
    assert calls[0] == 1 and "lesion_logits" in full
    fast = net(image, lesions=False)
    assert calls[0] == 1  # the decoder did not run
    assert "lesion_logits" not in fast
    assert torch.allclose(fast["grade_logits"], full["grade_logits"])

    stats = MultiTaskNet(
        NetworkConfig(
            encoder="tu-test_resnet", decoder_channels=[16, 16, 8, 8, 8], conditioning="stats"
        )
    ).eval()
    calls = count_calls(stats.decoder)
    out = stats(image, lesions=False)  # the grade reads the maps: they must be computed
    assert calls[0] == 1 and "lesion_logits" in out


def test_training_step_skips_the_decoder_on_batches_without_masks():
    torch.manual_seed(0)
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    calls = count_calls(task.net.decoder)
    grading = {"image": torch.randn(4, 3, 32, 32), "grade": torch.tensor([0, 1, 2, 3])}
    loss = task.training_step(grading, 0)
    assert calls[0] == 0 and torch.isfinite(loss)
    loss.backward()
    assert task.net.grade_head.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in task.net.decoder.parameters())
    segmentation = {
        "image": torch.randn(2, 3, 32, 32),
        "mask": torch.zeros(2, 4, 32, 32, dtype=torch.uint8),
        "grade": torch.tensor([-1, -1]),
    }
    task.training_step(segmentation, 0)
    assert calls[0] == 1  # masks need the maps


def test_tta_views_are_the_flip_and_dihedral_groups():
    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert len(tta_views(image, "none")) == 1
    flips = tta_views(image, "flips")
    dihedral = tta_views(image, "dihedral")
    assert len(flips) == 4 and len(dihedral) == 8
    distinct = {tuple(v[0, 0].flatten().tolist()) for v in dihedral}
    assert len(distinct) == 8  # all 8 symmetries of the square, none repeated
    rotated = tuple(torch.rot90(image, 1, dims=(-2, -1))[0, 0].flatten().tolist())
    assert rotated in distinct
    with pytest.raises(ValueError, match="tta"):
        tta_views(image, "rotations")  # type: ignore[arg-type]


@pytest.mark.parametrize("output", ["softmax", "coral"])
def test_tta_averages_grade_probabilities_and_makes_them_flip_invariant(output):
    torch.manual_seed(0)
    image = torch.randn(3, 3, 32, 32)
    plain = MultiTaskDR(network=NetworkConfig(**TINY, grade_output=output)).eval()
    tta = MultiTaskDR(network=NetworkConfig(**TINY, grade_output=output), tta="dihedral").eval()
    tta.load_state_dict(plain.state_dict())
    with torch.no_grad():
        base = plain.evaluation_forward(image)
        out = tta.evaluation_forward(image)
        expected = torch.stack(
            [plain(view)["grade_probs"] for view in tta_views(image, "dihedral")]
        ).mean(0)
        rotated = tta.evaluation_forward(torch.rot90(image, 1, dims=(-2, -1)))
    assert torch.allclose(out["grade_probs"], expected, atol=1e-6)
    assert not torch.allclose(out["grade_probs"], base["grade_probs"], atol=1e-4)
    assert torch.allclose(out["grade_probs"].sum(-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(rotated["grade_probs"], out["grade_probs"], atol=1e-5)
    # Lesion maps and the loss's logits stay those of the plain view.
    assert torch.allclose(out["lesion_probs"], base["lesion_probs"])
    assert torch.allclose(out["grade_logits"], base["grade_logits"])


def test_undo_view_turns_every_view_back_onto_the_image():
    image = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    for index, view in enumerate(tta_views(image, "dihedral")):
        assert torch.equal(undo_view(view, index), image), index


@pytest.mark.parametrize("window", [None, 16])
def test_lesion_tta_averages_maps_turned_back_and_makes_them_rotation_invariant(window):
    torch.manual_seed(0)
    image = torch.randn(2, 3, 32, 32)
    plain = MultiTaskDR(network=NetworkConfig(**TINY), eval_window=window).eval()
    tta = MultiTaskDR(network=NetworkConfig(**TINY), eval_window=window, lesion_tta="dihedral")
    tta.load_state_dict(plain.state_dict())
    tta.eval()
    with torch.no_grad():
        base = plain.evaluation_forward(image)
        out = tta.evaluation_forward(image)
        expected = torch.stack(
            [
                undo_view(plain.evaluation_forward(view)["lesion_probs"], i)
                for i, view in enumerate(tta_views(image, "dihedral"))
            ]
        ).mean(0)
        rotated = tta.evaluation_forward(torch.rot90(image, 1, dims=(-2, -1)))
    assert torch.allclose(out["lesion_probs"], expected, atol=1e-6)
    assert not torch.allclose(out["lesion_probs"], base["lesion_probs"], atol=1e-4)
    turned_back = torch.rot90(rotated["lesion_probs"], -1, dims=(-2, -1))
    assert torch.allclose(turned_back, out["lesion_probs"], atol=1e-5)
    # The loss's logits and the grade stay the plain view's (grade TTA is ``tta``).
    assert torch.allclose(out["lesion_logits"], base["lesion_logits"])
    assert torch.allclose(out["grade_probs"], base["grade_probs"])
