"""Further reads at evaluation: lesion maps of the same images read at other sizes, averaged."""

import pytest
import torch
from torch.nn import functional as F

from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.inference import evaluate_image, onto_grid, tta_views, undo_view
from multitask_dr.tasks.multitask import MultiTaskDR

from .conftest import TINY, save


def test_onto_grid_area_averages_a_larger_map_and_interpolates_a_smaller_one():
    maps = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8)
    assert torch.equal(onto_grid(maps, (8, 8)), maps)
    assert torch.allclose(onto_grid(maps, (4, 4)), F.avg_pool2d(maps, 2))
    small = onto_grid(maps, (16, 16))
    assert small.shape == (2, 4, 16, 16)
    assert torch.allclose(small, F.interpolate(maps, size=(16, 16), mode="bilinear"))
    # A non-integer ratio (1024 -> 768 in real use) keeps the mean of a constant map.
    assert torch.allclose(onto_grid(torch.full((1, 1, 12, 12), 0.3), (9, 9)), torch.tensor(0.3))


def first_channels(image: torch.Tensor) -> torch.Tensor:
    """A stand-in lesion pass: the image's first 4 channels' worth (repeated), no symmetry."""
    ramp = torch.linspace(-1, 1, image.shape[-1], device=image.device)
    return image[:, :1].repeat(1, 4, 1, 1) + ramp  # the ramp makes flips differ


def stand_in_forward(image: torch.Tensor, lesions: bool = True) -> dict[str, torch.Tensor]:
    logits = first_channels(image)
    out = {"grade_probs": torch.softmax(image.mean((2, 3)), -1), "lesion_logits": logits}
    return out | {"lesion_probs": torch.sigmoid(logits)}


@pytest.mark.parametrize("lesion_tta", ["none", "dihedral"])
def test_reads_are_tta_averaged_put_on_the_working_grid_and_averaged_alike(lesion_tta):
    torch.manual_seed(0)
    image = torch.randn(2, 3, 8, 8)
    read = torch.randn(2, 3, 16, 16)
    out = evaluate_image(
        stand_in_forward, first_channels, image, lesion_tta=lesion_tta, reads=[read]
    )

    def tta_map(x):
        views = tta_views(x, lesion_tta)
        return torch.stack(
            [undo_view(torch.sigmoid(first_channels(v)), i) for i, v in enumerate(views)]
        ).mean(0)

    expected = (tta_map(image) + F.avg_pool2d(tta_map(read), 2)) / 2
    assert torch.allclose(out["lesion_probs"], expected, atol=1e-6)
    # Grades and the loss's logits stay the working read's.
    plain = stand_in_forward(image)
    assert torch.equal(out["grade_probs"], plain["grade_probs"])
    assert torch.equal(out["lesion_logits"], plain["lesion_logits"])


def test_a_read_larger_than_the_window_slides_windows_of_its_own():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 16, 16)
    read = torch.randn(1, 3, 32, 32)
    calls: list[tuple[int, ...]] = []

    def counted(x):
        calls.append(tuple(x.shape[-2:]))
        return first_channels(x)

    evaluate_image(stand_in_forward, counted, image, window=16, reads=[read])
    # The working image fits one window (the forward's own pass); the read is windowed.
    assert calls and all(shape == (16, 16) for shape in calls)
    assert len(calls) == 9  # 3 x 3 windows of 16 with overlap 0.25 over 32


def test_the_task_and_its_ensemble_members_average_the_reads(tmp_path):
    torch.manual_seed(0)
    model = MultiTaskDR(network=NetworkConfig(**TINY), lesion_tta="flips").eval()
    image, read = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        alone = model.evaluation_forward(image)["lesion_probs"]
        both = model.evaluation_forward(image, [read])["lesion_probs"]
        read_alone = model.evaluation_forward(read)["lesion_probs"]
        assert torch.allclose(both, (alone + onto_grid(read_alone, (64, 64))) / 2, atol=1e-6)
        torch.manual_seed(1)
        member = MultiTaskDR(network=NetworkConfig(**TINY), lesion_tta="flips").eval()
        member_both = member.evaluation_forward(image, [read])["lesion_probs"]
        path = save(member, tmp_path / "member.ckpt")
        ensemble = MultiTaskDR(
            network=NetworkConfig(**TINY), lesion_tta="flips", ensemble_checkpoints=[path]
        ).eval()
        ensemble.load_state_dict(model.state_dict())
        out = ensemble.evaluation_forward(image, [read])["lesion_probs"]
    assert not torch.allclose(both, alone, atol=1e-4)
    assert torch.allclose(out, (both + member_both) / 2, atol=1e-6)


def test_evaluation_and_predict_steps_read_the_batch_reads():
    torch.manual_seed(0)
    model = MultiTaskDR(network=NetworkConfig(**TINY)).eval()
    image, read = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    batch = {
        "image": image,
        "image_reads": [read],
        "mask": torch.zeros(2, 4, 64, 64, dtype=torch.uint8),
        "grade": torch.tensor([-1, -1]),
    }
    with torch.no_grad():
        expected = model.evaluation_forward(image, [read])["lesion_probs"]
        outputs = model.evaluate(batch, "val")
        predicted = model.predict_step(batch, 0)
    assert torch.allclose(outputs["batch"]["lesion_probs"], expected)
    assert torch.allclose(predicted["lesion_probs"], expected)
