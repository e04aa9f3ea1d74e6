import pytest
import torch

from multitask_dr.attribution import encode, gradient_x_input, integrated_gradients
from multitask_dr.models.heads import CONDITIONINGS

from .conftest import tiny_net


def lesion_maps(batch=2):
    torch.manual_seed(1)
    maps = torch.zeros(batch, 4, 64, 64)
    maps[:, 0, 10:12, 40:42] = 0.9
    maps[:, 1, 20:30, 8:20] = torch.rand(10, 12) * 0.5 + 0.5
    maps[:, 2, 44:50, 30:40] = 0.7
    return maps


@pytest.mark.parametrize("output", ["softmax", "coral"])
def test_integrated_gradients_are_complete_for_a_continuous_head(output):
    # lesion_pooled reads the maps only through averages: continuous, so IG must add up.
    net = tiny_net("lesion_pooled", output)
    evidence = encode(net, torch.randn(2, 3, 64, 64), lesion_maps())
    result = integrated_gradients(net, evidence, steps=64)
    assert result.maps.shape == (2, 4, 64, 64)
    assert result.delta.abs().min() > 1e-4
    assert result.completeness_gap.abs().max() < 0.02 * result.delta.abs().max() + 1e-5
    # Only pixels where a map differs from the all-zero baseline can carry attribution.
    assert result.maps[:, 3].abs().max() == 0
    for target in (0, 4):
        per_grade = integrated_gradients(net, evidence, target=target, steps=64)
        assert per_grade.completeness_gap.abs().max() < 0.02 * per_grade.delta.abs().max() + 1e-5


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_gradient_methods_run_for_every_head(conditioning):
    net = tiny_net(conditioning)
    evidence = encode(net, torch.randn(2, 3, 64, 64), lesion_maps())
    for result in (integrated_gradients(net, evidence, steps=4), gradient_x_input(net, evidence)):
        assert result.totals.shape == (2, 4)
        if conditioning == "none":
            assert result.maps.abs().max() == 0 and result.delta.abs().max() == 0
        else:
            assert result.maps.abs().max() > 0
        frame = result.to_frame()
        assert len(frame) == 8
        assert frame["attribution"].to_numpy() == pytest.approx(result.totals.flatten().numpy())
    assert all(p.grad is None for p in net.parameters())  # attribution trains nothing


def test_gradient_x_input_is_the_gradient_times_the_map():
    net = tiny_net("stats")
    evidence = encode(net, torch.randn(1, 3, 64, 64), lesion_maps(1))
    maps = evidence.lesion_probs.clone().requires_grad_(True)
    logits, _ = net.grade_from_lesions(evidence.features, maps)
    expected = logits.softmax(-1) @ torch.arange(5.0)
    (grad,) = torch.autograd.grad(expected.sum(), maps)
    result = gradient_x_input(net, evidence)
    assert torch.allclose(result.maps, grad * evidence.lesion_probs, atol=1e-6)


def test_ig_rejects_a_bad_target():
    net = tiny_net("stats")
    evidence = encode(net, torch.randn(1, 3, 64, 64), lesion_maps(1))
    with pytest.raises(ValueError, match="target"):
        integrated_gradients(net, evidence, target=7, steps=2)
