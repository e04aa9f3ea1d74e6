import pytest
import torch

from multitask_dr.models.heads import (
    CONDITIONINGS,
    GradeHead,
    combine_evidence,
    pool_under_lesions,
)
from multitask_dr.models.lesion_features import FEATURE_NAMES, LesionFeatures
from multitask_dr.models.network import MultiTaskNet, NetworkConfig, load_encoder_checkpoint
from multitask_dr.models.ordinal import grade_probabilities
from multitask_dr.tasks.losses import coral_targets, grade_loss, sord_targets

TINY = {"encoder": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("output", ["softmax", "coral"])
def test_every_head_trains_end_to_end(conditioning, output):
    torch.manual_seed(0)
    net = MultiTaskNet(
        NetworkConfig(**TINY, conditioning=conditioning, grade_output=output, detach_lesions=False)
    )
    out = net(torch.randn(2, 3, 64, 64))
    assert out["lesion_logits"].shape == (2, 4, 64, 64)
    assert out["grade_logits"].shape == (2, 5 if output == "softmax" else 4)
    loss = out["lesion_logits"].mean() + out["grade_logits"].pow(2).mean()
    loss.backward()
    assert next(net.encoder.parameters()).grad is not None  # shared encoder gets both gradients
    assert ("contributions" in out) == (conditioning == "bottleneck")


def test_bottleneck_logits_decompose_exactly_into_lesion_contributions():
    torch.manual_seed(0)
    net = MultiTaskNet(NetworkConfig(**TINY, conditioning="bottleneck")).eval()
    out = net(torch.randn(3, 3, 64, 64))
    recomposed = out["contributions"].sum(dim=1) + net.grade_head.bias
    assert torch.allclose(recomposed, out["grade_logits"], atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "coral"])
def test_max_bottleneck_trains_and_has_no_additive_contributions(output):
    torch.manual_seed(0)
    net = MultiTaskNet(
        NetworkConfig(
            **TINY, conditioning="bottleneck", bottleneck_combine="max", grade_output=output
        )
    )
    out = net(torch.randn(2, 3, 64, 64))
    assert "contributions" not in out
    assert out["grade_logits"].shape == (2, 5 if output == "softmax" else 4)
    out["grade_logits"].pow(2).mean().backward()
    assert net.grade_head.lesion_weights.grad.abs().sum() > 0


def test_max_combination_lets_the_most_severe_lesion_decide():
    # Severities (coral): HE 4, MA 1, EX/SE absent (-6); thresholds 0.5, 1.5, 2.5, 3.5.
    evidence = torch.tensor([[[1.0], [4.0], [-6.0], [-6.0]]])
    thresholds = -torch.tensor([0.5, 1.5, 2.5, 3.5])

    def grade(ev, combine):
        logits = combine_evidence(ev, thresholds, combine, "coral")
        return grade_probabilities(logits, "coral") @ torch.arange(5.0)

    no_ma, no_he = evidence.clone(), evidence.clone()
    no_ma[0, 0], no_he[0, 1] = -6.0, -6.0
    full = grade(evidence, "max")
    # Erasing the decider (HE) drops the grade to the MA level; erasing MA barely moves it.
    assert full - grade(no_he, "max") > 1.5
    assert abs(full - grade(no_ma, "max")) < 0.1
    # The additive head moves by each lesion's whole term, whether or not it decides.
    assert torch.allclose(
        combine_evidence(evidence, thresholds, "sum", "coral"), evidence.sum(1) + thresholds
    )
    # Softmax: each grade's logit is the smooth maximum of "no lesion" (bias) and the lesions.
    per_grade = torch.randn(3, 4, 5)
    bias = torch.randn(5)
    logits = combine_evidence(per_grade, bias, "max", "softmax")
    stacked = torch.cat([bias.expand(3, 1, 5), per_grade], dim=1)
    assert torch.allclose(logits, torch.logsumexp(stacked, dim=1))
    assert (logits >= stacked.amax(dim=1)).all()


def test_unknown_combination_is_rejected():
    with pytest.raises(ValueError, match="combine"):
        GradeHead(16, 4, 5, conditioning="bottleneck", bottleneck_combine="mean")


def test_detach_lesions_stops_grade_gradient_into_lesion_maps():
    torch.manual_seed(0)
    for detach, expect_grad in ((True, False), (False, True)):
        net = MultiTaskNet(NetworkConfig(**TINY, conditioning="stats", detach_lesions=detach))
        net(torch.randn(2, 3, 64, 64))["grade_logits"].sum().backward()
        grad = net.segmentation_head[0].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == expect_grad


def test_lesion_features_measure_area_count_and_quadrants():
    probs = torch.zeros(1, 4, 64, 64)
    probs[0, 1, 5:9, 5:9] = 1.0  # HE top-left
    probs[0, 1, 50:54, 50:54] = 1.0  # HE bottom-right
    probs[0, 0, 10, 40] = 0.9  # one MA top-right
    features = LesionFeatures()(probs)[0]
    names = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert features.shape == (4, len(FEATURE_NAMES))
    he, ma, ex = features[1], features[0], features[2]
    assert torch.isclose(he[names["log_area"]].exp(), torch.tensor(32 / 4096 + 1e-4), rtol=1e-3)
    assert round(he[names["quadrant_spread"]].item()) == 2
    assert round(ma[names["quadrant_spread"]].item()) == 1
    assert ma[names["log_count"]].expm1().item() == pytest.approx(0.9, abs=1e-5)
    assert ex[names["peak"]] == 0 and ex[names["log_count"]] == 0


def test_pool_under_lesions_reads_features_under_each_map():
    deep = torch.zeros(1, 2, 4, 4)
    deep[0, 0, :2] = 1.0  # channel 0 lives in the top half
    probs = torch.zeros(1, 2, 8, 8)
    probs[0, 0, :4] = 1.0  # lesion 0 in the top half
    pooled = pool_under_lesions(deep, probs)
    # 8 lesion cells of feature 1, shrunk by the +1 prior: 8 / 9.
    assert pooled[0, 0, 0].item() == pytest.approx(8 / 9) and pooled[0, 0, 1] == 0
    assert torch.all(pooled[0, 1] == 0)  # absent lesion -> zero vector


def test_coral_probabilities_are_rank_consistent_distributions():
    logits = torch.randn(16, 4)
    probs = grade_probabilities(logits, "coral")
    assert probs.shape == (16, 5)
    assert torch.allclose(probs.sum(1), torch.ones(16), atol=1e-5)
    assert (probs >= 0).all()  # even for logits that are not (yet) ordered
    ordered = torch.tensor([[3.0, 1.0, -1.0, -3.0]])
    expected = torch.sigmoid(ordered)
    assert torch.isclose(grade_probabilities(ordered, "coral")[0, 0], 1 - expected[0, 0])
    assert coral_targets(torch.tensor([0, 2, 4]), 5).tolist() == [
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
    ]


def test_focal_loss_downweights_easy_examples():
    logits = torch.tensor([[4.0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0]])
    grades = torch.tensor([0, 0])
    plain = grade_loss(logits, grades, "softmax")
    focal = grade_loss(logits, grades, "softmax", focal_gamma=2.0)
    assert focal < plain
    weighted = grade_loss(logits, grades, "softmax", class_weights=torch.tensor([2.0, 1, 1, 1, 1]))
    assert torch.isclose(weighted, 2 * plain)


def test_unknown_conditioning_is_rejected():
    with pytest.raises(ValueError, match="conditioning"):
        GradeHead(8, 4, 5, conditioning="magic")


def test_encoder_checkpoint_loads_from_local_file(tmp_path):
    torch.manual_seed(0)
    source = MultiTaskNet(NetworkConfig(**TINY))
    path = tmp_path / "encoder.pt"
    torch.save({"encoder." + k: v for k, v in source.encoder.state_dict().items()}, path)
    torch.manual_seed(1)
    target = MultiTaskNet(NetworkConfig(**TINY, encoder_checkpoint=str(path)))
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            target.encoder.state_dict().values(), source.encoder.state_dict().values(), strict=True
        )
    )
    with pytest.raises(FileNotFoundError):
        load_encoder_checkpoint(target.encoder, tmp_path / "missing.pt")


def test_sord_targets_fall_with_grade_distance():
    targets = sord_targets(torch.tensor([0, 2, 4]), 5, scale=1.0)
    assert torch.allclose(targets.sum(1), torch.ones(3))
    assert targets.argmax(1).tolist() == [0, 2, 4]
    # Grade 2: symmetric around the true grade, and decreasing away from it.
    assert torch.isclose(targets[1, 1], targets[1, 3]) and targets[1, 1] > targets[1, 0]
    assert torch.all(targets[0, :-1] > targets[0, 1:])
    assert torch.allclose(targets[2], targets[0].flip(0))
    sharp = sord_targets(torch.tensor([3]), 5, scale=50.0)
    assert sharp[0, 3] > 0.999


def test_sord_loss_penalises_distant_grades_more():
    grades = torch.tensor([0])
    near = torch.tensor([[0.0, 4.0, 0.0, 0.0, 0.0]])  # confident grade 1
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0, 4.0]])  # confident grade 4
    plain = [grade_loss(x, grades, "softmax") for x in (near, far)]
    sord = [grade_loss(x, grades, "softmax", sord_scale=1.0) for x in (near, far)]
    assert torch.isclose(plain[0], plain[1])  # one-hot cross-entropy cannot tell them apart
    assert sord[0] < sord[1]
    expected = -(sord_targets(grades, 5, 1.0) * far.log_softmax(1)).sum()
    assert torch.isclose(sord[1], expected)


def test_expected_grade_is_the_probability_weighted_mean_grade():
    from multitask_dr.models.ordinal import expected_grade

    probs = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0], [0.5, 0, 0, 0, 0.5]])
    assert expected_grade(probs).tolist() == [0.0, 4.0, 2.0]
    batched = probs.expand(2, 3, 5)  # any leading shape, e.g. (batch, lesion, grades)
    assert expected_grade(batched).shape == (2, 3)
