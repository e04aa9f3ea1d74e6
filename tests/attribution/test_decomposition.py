import pytest
import torch

from multitask_dr.attribution import ablate_lesion_maps, decompose, encode
from multitask_dr.lesions import LESIONS
from multitask_dr.models.heads import CONDITIONINGS
from multitask_dr.models.network import MultiTaskNet, NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR

from .conftest import TINY, tiny_net


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_grade_from_lesions_reproduces_forward(conditioning):
    net = tiny_net(conditioning)
    image = torch.randn(2, 3, 64, 64)
    out = net(image)
    evidence = encode(net, image)
    assert torch.allclose(evidence.grade_logits, out["grade_logits"], atol=1e-6)
    assert torch.allclose(evidence.lesion_probs, torch.sigmoid(out["lesion_logits"]), atol=1e-6)


def test_encode_accepts_a_task_and_given_maps():
    task = MultiTaskDR(
        network=NetworkConfig(
            encoder="tu-test_resnet", decoder_channels=[16, 16, 8, 8, 8], conditioning="stats"
        )
    )
    maps = torch.zeros(1, 4, 64, 64)
    maps[0, 1, 10:14, 10:14] = 1.0
    evidence = encode(task, torch.randn(1, 3, 64, 64), maps)
    assert evidence.lesion_probs is not maps and torch.equal(evidence.lesion_probs, maps)
    assert task.net.training  # left as it was
    with pytest.raises(ValueError, match="lesion_probs must be"):
        encode(task, torch.randn(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("output", ["softmax", "coral"])
def test_bottleneck_logits_are_the_sum_of_lesion_contributions_plus_bias(output):
    net = tiny_net("bottleneck", output)
    evidence = encode(net, torch.randn(3, 3, 64, 64))
    result = decompose(net, evidence)
    assert result.residual < 1e-5
    recomposed = result.contributions.sum(dim=1) + result.bias
    assert torch.allclose(recomposed, evidence.grade_logits, atol=1e-5)
    # The same identity relative to the absent-lesion baseline.
    rebased = result.relative.sum(dim=1) + result.bias + result.baseline.sum(dim=1)
    assert torch.allclose(rebased, evidence.grade_logits, atol=1e-5)

    frame = result.to_frame()
    width = 1 if output == "coral" else 5
    assert len(frame) == 3 * len(LESIONS) * width
    assert set(frame.columns) >= {"sample", "lesion", "output", "contribution", "relative"}
    sums = frame.groupby(["sample", "output"], sort=False)["contribution"].sum().to_numpy()
    expected = (result.contributions.sum(dim=1)).flatten().numpy()
    assert sums == pytest.approx(expected, abs=1e-5)


def test_relative_contribution_is_exactly_the_logit_change_of_erasing_that_map():
    net = tiny_net("bottleneck")
    maps = torch.zeros(2, 4, 64, 64)
    maps[:, 0, 5:7, 40:42] = 0.9
    maps[:, 1, 30:38, 10:20] = 1.0
    maps[1, 3, 50:56, 50:56] = 0.8
    evidence = encode(net, torch.randn(2, 3, 64, 64), maps)
    result = decompose(net, evidence)
    for channel in range(len(LESIONS)):
        edited = maps.clone()
        edited[:, channel] = 0
        logits, _ = net.grade_from_lesions(evidence.features, edited)
        change = evidence.grade_logits - logits
        assert torch.allclose(change, result.relative[:, channel], atol=1e-5)
    # Absent lesions (EX everywhere, SE in image 0) contribute nothing relative to baseline.
    assert result.relative[:, 2].abs().max() < 1e-6 and result.relative[0, 3].abs().max() < 1e-6
    ranking = dict(result.ranking(sample=0))
    assert set(ranking) == set(LESIONS) and ranking["EX"] == pytest.approx(0, abs=1e-6)
    # Map ablation of a bottleneck head agrees with the decomposition in probability space too.
    ablation = ablate_lesion_maps(net, evidence, include_all=False)
    assert ablation.effect[:, 2].abs().max() < 1e-6


@pytest.mark.parametrize("conditioning", ["none", "stats", "lesion_pooled"])
def test_decompose_refuses_heads_without_an_exact_decomposition(conditioning):
    net = tiny_net(conditioning)
    with pytest.raises(ValueError, match="bottleneck"):
        decompose(net, encode(net, torch.randn(1, 3, 64, 64)))


def test_decompose_refuses_a_max_bottleneck_and_says_to_ablate():
    torch.manual_seed(0)
    net = MultiTaskNet(
        NetworkConfig(**TINY, conditioning="bottleneck", bottleneck_combine="max")
    ).eval()
    with pytest.raises(ValueError, match="ablate_lesion_maps"):
        decompose(net, encode(net, torch.randn(1, 3, 64, 64)))
