import math

import pytest
import torch

from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR
from multitask_dr.tasks.regularisation import draw_mixup, teacher_maps

from .conftest import TINY, grade_batch, seg_batch


def teacher(task: MultiTaskDR, batch: dict):
    """The task's teacher-forcing draw for ``batch``."""
    return teacher_maps(batch, task.hparams.teacher_forcing, task.net.needs_lesion_maps())


def mixup(task: MultiTaskDR, batch: dict):
    """The task's mixup draw for ``batch``."""
    return draw_mixup(batch, task.hparams.mixup_alpha)


def test_losses_are_masked_by_the_labels_each_batch_has():
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    seg_only = seg_batch()
    seg, grade = task.source_losses(seg_only, task(seg_only["image"]))
    assert seg is not None and grade is None
    graded = grade_batch()
    seg, grade = task.source_losses(graded, task(graded["image"]))
    assert seg is None and grade is not None
    partly = seg_batch(n=3, grades=[-1, 2, -1])
    seg, grade = task.source_losses(partly, task(partly["image"]))
    assert seg is not None and grade is not None


def test_joint_training_step_updates_encoder_from_both_sources():
    torch.manual_seed(0)
    task = MultiTaskDR(network=NetworkConfig(**TINY, conditioning="stats"))
    joint = {"segmentation": seg_batch(), "grading": grade_batch()}
    loss = task.training_step(joint, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert task.net.segmentation_head[0].weight.grad.abs().sum() > 0
    assert task.net.grade_head.net[0].weight.grad.abs().sum() > 0


def test_ignored_pixels_do_not_change_the_segmentation_loss():
    torch.manual_seed(0)
    task = MultiTaskDR(network=NetworkConfig(**TINY)).eval()
    batch = seg_batch()
    out = task(batch["image"])
    a, _ = task.source_losses(batch, out)
    out["lesion_logits"][:, :, :2] += 100.0  # only the ignored rows change
    b, _ = task.source_losses(batch, out)
    assert torch.isclose(a, b)


def test_uncertainty_weighting_learns_log_variances():
    task = MultiTaskDR(network=NetworkConfig(**TINY), loss_weighting="uncertainty")
    total = task.combine(torch.tensor(2.0), torch.tensor(1.0))
    assert task.log_vars.requires_grad
    total.backward()
    # d/ds (exp(-s) L + s) at s = 0 is 1 - L
    assert task.log_vars.grad.tolist() == pytest.approx([-1.0, 0.0])
    fixed = MultiTaskDR(network=NetworkConfig(**TINY), seg_weight=2.0, grade_weight=0.5)
    assert fixed.combine(torch.tensor(2.0), None).item() == pytest.approx(4.0)


def test_metrics_follow_the_absent_class_rule():
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    probs = torch.zeros(1, 4, 8, 8)
    mask = torch.zeros(1, 4, 8, 8, dtype=torch.long)
    mask[0, 0, :4] = 1  # MA present and perfectly predicted
    probs[0, 0, :4] = 0.9
    probs[0, 2, 0, 0] = 0.8  # EX absent from labels but predicted: Dice 0
    task.metrics["val"].update_lesions(probs, mask)
    results = task.metrics["val"].compute()
    assert results["val/seg/dice_MA"].item() == pytest.approx(1.0)
    assert results["val/seg/dice_EX"].item() == 0.0
    assert math.isnan(results["val/seg/dice_HE"].item())  # absent and not predicted
    assert math.isnan(results["val/seg/aupr_EX"].item())  # no positive pixel
    assert results["val/seg/dice_mean"].item() == pytest.approx(0.5)
    assert results["val/score"].item() == pytest.approx(1.0)  # only AUPR(MA) is defined


def test_grade_metrics_and_score():
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    grades = torch.tensor([0, 1, 2, 3, 4, 4])
    probs = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 3]), 5).float()
    task.metrics["test"].update_grades(probs, grades)
    results = task.metrics["test"].compute()
    assert results["test/grade/acc"].item() == pytest.approx(5 / 6)
    assert 0.8 < results["test/grade/qwk"].item() < 1.0
    assert results["test/grade/recall_4"].item() == pytest.approx(0.5)
    assert results["test/score"] == results["test/grade/qwk"]


def test_teacher_forcing_feeds_annotated_maps_to_the_grade_head_in_training_only():
    torch.manual_seed(0)
    task = MultiTaskDR(
        network=NetworkConfig(**TINY, conditioning="bottleneck"), teacher_forcing=1.0
    )
    graded = seg_batch(grades=[1, 3])
    maps = teacher(task, graded)
    # Annotated lesion pixels are 1, everything else (unscored 255 included) is background.
    assert torch.equal(maps, (graded["mask"] == 1).float())
    assert maps[:, :, :2].sum() == 0
    # Not for ungraded masks, not for grading-only batches, not for a head that ignores maps.
    assert teacher(task, seg_batch()) is None
    assert teacher(task, grade_batch()) is None
    assert teacher(MultiTaskDR(network=NetworkConfig(**TINY), teacher_forcing=1.0), graded) is None
    assert teacher(MultiTaskDR(network=NetworkConfig(**TINY, conditioning="stats")), graded) is None

    task.eval()
    image = graded["image"]
    with torch.no_grad():
        forced = task(image, lesion_maps=maps)
        plain = task(image)
        expected, _ = task.net.grade_from_lesions(task.net.encoder(image), maps)
    assert torch.allclose(forced["grade_logits"], expected, atol=1e-5)
    assert not torch.allclose(forced["grade_logits"], plain["grade_logits"])
    # The decoder's own maps are still returned for the segmentation loss.
    assert torch.allclose(forced["lesion_logits"], plain["lesion_logits"])


def test_teacher_forcing_share_is_seeded():
    task = MultiTaskDR(network=NetworkConfig(**TINY, conditioning="stats"), teacher_forcing=0.5)
    graded = seg_batch(grades=[1, 3])

    def draws():
        torch.manual_seed(0)
        return [teacher(task, graded) is not None for _ in range(200)]

    first = draws()
    assert first == draws()
    assert 0.4 < sum(first) / len(first) < 0.6


def test_mixup_blends_images_and_grade_losses_of_grading_batches_only():
    task = MultiTaskDR(network=NetworkConfig(**TINY), mixup_alpha=0.4)
    graded = grade_batch(n=6)
    torch.manual_seed(0)
    mix = mixup(task, graded)
    assert mix is not None and 0 <= mix.weight <= 1
    assert sorted(mix.partner.tolist()) == list(range(6))
    torch.manual_seed(0)
    again = mixup(task, graded)
    assert again.weight == mix.weight and torch.equal(again.partner, mix.partner)

    mixed = mix.apply(graded["image"])
    i, j = 0, int(mix.partner[0])
    assert torch.allclose(
        mixed[i], mix.weight * graded["image"][i] + (1 - mix.weight) * graded["image"][j]
    )
    task.eval()
    out = task(mixed, lesions=False)
    _, loss = task.source_losses(graded, out, mix)
    logits = out["grade_logits"]
    expected = mix.weight * task.grade_loss(logits, graded["grade"]) + (
        1 - mix.weight
    ) * task.grade_loss(logits, graded["grade"][mix.partner])
    assert torch.isclose(loss, expected)

    # Never for lesion batches, partly ungraded batches, single images, or alpha 0.
    assert mixup(task, seg_batch(grades=[1, 2])) is None
    assert mixup(task, {**graded, "grade": torch.tensor([1, -1, 2, 3, 0, 4])}) is None
    assert mixup(task, grade_batch(n=1)) is None
    assert mixup(MultiTaskDR(network=NetworkConfig(**TINY)), graded) is None


def test_training_step_feeds_the_network_mixed_images():
    task = MultiTaskDR(network=NetworkConfig(**TINY), mixup_alpha=1.0)
    batch = grade_batch(n=4)
    seen = []
    task.net.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[0]), with_kwargs=True
    )
    torch.manual_seed(3)
    task.training_step(batch, 0)
    torch.manual_seed(3)
    mix = mixup(task, batch)
    assert torch.allclose(seen[0], mix.apply(batch["image"]))
    assert not torch.allclose(seen[0], batch["image"])


def test_sord_needs_softmax_and_mixup_a_non_negative_alpha():
    with pytest.raises(ValueError, match="sord_scale needs grade_output: softmax"):
        MultiTaskDR(network=NetworkConfig(**TINY, grade_output="coral"), sord_scale=1.0)
    with pytest.raises(ValueError, match="mixup_alpha must be >= 0"):
        MultiTaskDR(network=NetworkConfig(**TINY), mixup_alpha=-0.1)


@pytest.mark.parametrize("encoder_lr", [None, 1e-5])
def test_encoder_lr_applies_to_the_encoder_alone(encoder_lr):
    task = MultiTaskDR(
        network=NetworkConfig(**TINY), lr=1e-3, encoder_lr=encoder_lr, warmup_epochs=0
    )
    optimizer = task.configure_optimizers()["optimizer"]
    encoder, rest = optimizer.param_groups
    assert {id(p) for p in encoder["params"]} == {id(p) for p in task.net.encoder.parameters()}
    assert len(encoder["params"]) + len(rest["params"]) == len(list(task.parameters()))
    assert encoder["lr"] == (1e-3 if encoder_lr is None else 1e-5)
    assert rest["lr"] == 1e-3


def test_importing_the_task_installs_no_warning_filter():
    import subprocess
    import sys

    # Third-party imports add filters of their own; ours is the one about Lightning's advice.
    code = (
        "import warnings; import multitask_dr.tasks.multitask; "
        "ours = [f for f in warnings.filters if f[1] is not None "
        "and 'It is recommended' in f[1].pattern]; "
        "assert not ours, ours"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_the_checkpoint_records_which_heads_were_trained(tmp_path):
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    assert not task.trained("seg") and not task.trained("grade")
    task.training_step({"segmentation": seg_batch()}, 0)
    task.training_step({"segmentation": seg_batch()}, 1)
    assert task.trained_steps.tolist() == [2, 0]  # lesion-only data: the grade head is untrained
    task.training_step({"segmentation": seg_batch(), "grading": grade_batch()}, 2)
    assert task.trained_steps.tolist() == [3, 1]
    # The record travels in the weights (a resumed or loaded model keeps it).
    restored = MultiTaskDR(network=NetworkConfig(**TINY))
    restored.load_state_dict(task.state_dict())
    assert restored.trained("grade") and restored.trained_steps.tolist() == [3, 1]
