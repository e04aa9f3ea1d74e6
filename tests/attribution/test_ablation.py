import numpy as np
import pytest
import torch

from multitask_dr.attribution import (
    ablate_by_inpainting,
    ablate_lesion_maps,
    ablation_curves,
    encode,
    inpaint,
    normalize,
)
from multitask_dr.lesions import LESIONS
from multitask_dr.models.heads import CONDITIONINGS

from .conftest import phantoms, tiny_net

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def phantom():
    # Grade 3 or 4 eyes carry several lesion types; take the first with at least two.
    for candidate in phantoms("ablation", 20, 64):
        if len({lesion.kind for lesion in candidate.lesions}) >= 2:
            return candidate
    raise AssertionError("no multi-lesion phantom in 20")


def ground_truth(phantom):
    from multitask_dr.datasets.synthetic.masks import lesion_masks

    masks = lesion_masks(phantom)
    return masks, torch.from_numpy(masks).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_map_ablation_runs_for_every_head_and_does_nothing_without_conditioning(
    conditioning, phantom
):
    net = tiny_net(conditioning)
    _, maps = ground_truth(phantom)
    evidence = encode(net, normalize(phantom.image, MEAN, STD), maps)
    result = ablate_lesion_maps(net, evidence)
    assert result.names == (*LESIONS, "all")
    assert result.ablated_probs.shape == (1, 5, 5)
    assert torch.allclose(result.ablated_probs.sum(-1), torch.ones(1, 5), atol=1e-5)
    present = {LESIONS.index(lesion.kind) for lesion in phantom.lesions}
    absent = [c for c in range(4) if c not in present]
    # Erasing a map that is already empty changes nothing, whatever the head.
    assert result.effect[0, absent].abs().max() < 1e-6 if absent else True
    if conditioning == "none":
        # The head never reads the maps: nothing but float32 rounding of the re-batched
        # forward pass, whose ulp at an expected grade near 2 is 2.4e-7.
        assert result.effect.abs().max() < 1e-6
    else:
        assert result.effect[0, sorted(present)].abs().max() > 1e-6
    frame = result.to_frame()
    assert list(frame["erased"]) == [*LESIONS, "all"]
    assert frame["effect"].to_numpy() == pytest.approx(result.effect[0].numpy())


def test_ablation_curves_run_from_the_found_maps_to_the_erased_ones(phantom):
    net = tiny_net("stats")
    _, maps = ground_truth(phantom)
    evidence = encode(net, normalize(phantom.image, MEAN, STD), maps)
    curves = ablation_curves(net, evidence, scales=[1.0, 0.5, 0.0])
    assert curves.probs.shape == (1, 4, 3, 5)
    for channel in range(4):
        assert torch.allclose(curves.probs[0, channel, 0], evidence.grade_probs[0], atol=1e-5)
    erased = ablate_lesion_maps(net, evidence, include_all=False)
    assert torch.allclose(curves.probs[0, :, -1], erased.ablated_probs[0], atol=1e-5)
    assert curves.scores.shape == (1, 4, 3)


def test_inpaint_replaces_a_dark_spot_with_its_surroundings():
    image = np.full((32, 32, 3), (200, 90, 40), np.uint8)
    image[14:18, 14:18] = (60, 10, 10)  # a "haemorrhage"
    mask = np.zeros((32, 32), bool)
    mask[13:19, 13:19] = True
    painted = inpaint(image, mask)
    assert np.abs(painted[14:18, 14:18].astype(int) - (200, 90, 40)).max() <= 3
    assert np.array_equal(painted[~mask], image[~mask])
    assert np.array_equal(inpaint(image, np.zeros_like(mask)), image)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_inpainting_changes_the_grade_for_every_head_including_none(conditioning, phantom):
    net = tiny_net(conditioning)
    masks, _ = ground_truth(phantom)
    result, painted = ablate_by_inpainting(net, phantom.image, MEAN, STD, masks=masks)
    present = [n for c, n in enumerate(LESIONS) if masks[..., c].any()]
    assert result.names == (*present, "all")
    assert set(painted) == set(result.names)
    assert all(image.shape == phantom.image.shape for image in painted.values())
    # The encoder sees the painted image, so even a head blind to the maps moves.
    assert result.effect.abs().max() > 1e-6
    assert result.method == "inpainting"


def test_inpainting_uses_the_models_own_maps_by_default(phantom):
    net = tiny_net("stats")
    result, painted = ablate_by_inpainting(net, phantom.image, MEAN, STD, threshold=0.5)
    evidence = encode(net, normalize(phantom.image, MEAN, STD))
    found = [n for c, n in enumerate(LESIONS) if (evidence.lesion_probs[0, c] > 0.5).any()]
    assert result.names == (*found, "all")
    with pytest.raises(ValueError, match="masks must be"):
        ablate_by_inpainting(net, phantom.image, MEAN, STD, masks=np.zeros((8, 8, 4), bool))
