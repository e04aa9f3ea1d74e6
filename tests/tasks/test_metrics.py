import math

import pytest
import torch
from torchmetrics.classification import (
    BinaryAveragePrecision,
    MultilabelAveragePrecision,
    MultilabelPrecisionRecallCurve,
)

from multitask_dr.tasks.metrics import (
    BinnedAveragePrecision,
    BinnedPrecisionRecallCurve,
    LesionScores,
)


@pytest.mark.parametrize("thresholds", [5, 50, 200])
def test_equals_torchmetrics_binned_average_precision(thresholds):
    torch.manual_seed(0)
    probs = torch.rand(3, 4, 20, 20)
    target = (torch.rand(3, 4, 20, 20) < probs * 0.3).long()
    target[:, :, :2] = 255
    ours = BinnedAveragePrecision(4, thresholds, ignore_index=255)
    reference = MultilabelAveragePrecision(4, average=None, thresholds=thresholds, ignore_index=255)
    for half in (slice(0, 2), slice(2, 3)):  # two updates accumulate
        ours.update(probs[half], target[half])
        reference.update(probs[half], target[half])
    assert torch.allclose(ours.compute(), reference.compute(), atol=1e-5)


def test_perfect_and_absent_labels():
    probs = torch.zeros(1, 2, 4, 4)
    target = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 1
    probs[0, 0, :2] = 0.9
    probs[0, 0, 2:] = 0.1
    probs[0, 1] = 0.7  # label 1 has no positive pixel
    metric = BinnedAveragePrecision(2, 100)
    metric.update(probs, target)
    ap = metric.compute()
    assert ap[0].item() == pytest.approx(1.0)
    assert math.isnan(ap[1].item())
    precision, recall, thresholds = metric.curves()
    assert precision.shape == recall.shape == (2, 100) and thresholds[-1] == 1
    assert recall[0, 0] == 1 and recall[0, -1] == 0


@pytest.mark.parametrize("thresholds", [5, 50])
def test_pr_curve_equals_torchmetrics_binned_curve(thresholds):
    torch.manual_seed(1)
    probs = torch.rand(3, 4, 16, 16)
    target = (torch.rand(3, 4, 16, 16) < probs * 0.3).long()
    target[:, :, :2] = 255
    target[:, 3] = 0  # a label without positives: recall is 0/0
    probs[:, 2] = probs[:, 2] * 0.5  # nothing predicted at high thresholds: precision 0/0
    ours = BinnedPrecisionRecallCurve(4, thresholds, ignore_index=255)
    reference = MultilabelPrecisionRecallCurve(4, thresholds=thresholds, ignore_index=255)
    for half in (slice(0, 2), slice(2, 3)):
        ours.update(probs[half], target[half])
        reference.update(probs[half], target[half])
    (precision, recall, grid), (ref_precision, ref_recall, ref_grid) = (
        ours.compute(),
        reference.compute(),
    )
    assert precision.shape == recall.shape == (4, thresholds + 1)
    assert torch.isnan(recall[3, :-1]).all() and torch.isnan(precision[2, -2])
    assert torch.allclose(precision, ref_precision, atol=1e-6, equal_nan=True)
    assert torch.allclose(recall, ref_recall, atol=1e-6, equal_nan=True)
    assert torch.allclose(grid, ref_grid)


def test_lesion_aupr_resolves_saturated_maps_like_the_exact_value():
    """A trained map puts its confident pixels in [0.995, 1): coarse bins merge their ranking."""
    torch.manual_seed(2)
    target = (torch.rand(2, 1, 64, 64) < 0.05).long()
    # Lesions rank above most retina, but both crowd the top 0.5 % of the probability range.
    score = torch.rand(2, 1, 64, 64) + 0.6 * target
    probs = 0.995 + 0.0049 * score / score.max()
    probs[torch.rand_like(probs) < 0.5] = 0.01  # half the retina is confidently background
    exact = BinaryAveragePrecision(thresholds=None)(probs.flatten(), target.flatten()).item()
    coarse = BinnedAveragePrecision(1, 200)
    coarse.update(probs, target)
    lesion = LesionScores(lesions=("EX",))
    lesion.update(probs, target)
    assert coarse.compute().item() < exact - 0.2  # one bin: AUPR falls to the bin's precision
    assert lesion.compute()["aupr_EX"].item() == pytest.approx(exact, abs=2e-3)
