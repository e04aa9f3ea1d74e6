import numpy as np
import pytest
import torch

from multitask_dr.datamodules import TJDRDataModule
from multitask_dr.datamodules.transforms import NO_AUGMENTATION, LesionCentredCrop, SampleTransform
from multitask_dr.tasks.inference import sliding_window, tent_weight, window_starts


def crop_pipeline(size, share, seed=0):
    return SampleTransform([LesionCentredCrop(size, share)], (0.5,) * 3, (0.25,) * 3, seed=seed)


def sample_with_one_ma_and_big_ex():
    mask = np.zeros((200, 200, 4), np.uint8)
    mask[150, 30, 0] = 1  # a single MA pixel
    mask[20:80, 100:190, 2] = 1  # a large EX field
    return {"image": np.zeros((200, 200, 3), np.uint8), "mask": mask, "grade": 0}


def test_lesion_centred_patches_reach_rare_lesions():
    transform = crop_pipeline(32, share=1.0)
    sample = sample_with_one_ma_and_big_ex()
    hits = {"MA": 0, "EX": 0}
    for _ in range(200):
        patch = transform(sample)["mask"]
        assert patch.shape == (4, 32, 32)
        assert patch.any()  # every patch holds a lesion
        hits["MA"] += bool(patch[0].any())
        hits["EX"] += bool(patch[2].any())
    # Types are drawn uniformly: the single MA pixel is in about half the patches, although it
    # is 1 of 5401 lesion pixels.
    assert 70 <= hits["MA"] <= 130


def test_random_patches_when_share_is_zero_and_seeded():
    sample = sample_with_one_ma_and_big_ex()
    a = [crop_pipeline(32, 0.0, seed=1)(sample)["mask"].sum().item() for _ in range(50)]
    b = [crop_pipeline(32, 0.0, seed=1)(sample)["mask"].sum().item() for _ in range(50)]
    assert a == b
    transform = crop_pipeline(32, 0.0, seed=1)
    ma = sum(bool(transform(sample)["mask"][0].any()) for _ in range(200))
    assert ma < 20  # random placement rarely covers the lone MA


def test_patch_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="exceeds"):
        crop_pipeline(300, 1.0)(sample_with_one_ma_and_big_ex())


def test_window_starts_cover_the_border():
    assert window_starts(100, 32, 24) == [0, 24, 48, 68]
    assert window_starts(20, 32, 24) == [0]
    weight = tent_weight(8, torch.device("cpu"))
    assert weight.max() == 1 and weight[0, 0] > 0 and weight[3, 3] > weight[0, 3]


def test_sliding_window_blends_to_the_single_pass_result():
    image = torch.randn(2, 3, 100, 90)

    def predict(x):  # pointwise: every window agrees, so blending must reproduce it exactly
        return torch.cat([x * 2, x.sum(1, keepdim=True)], dim=1)

    blended = sliding_window(predict, image, window=32, overlap=0.5)
    assert blended.shape == (2, 4, 100, 90)
    assert torch.allclose(blended, predict(image), atol=1e-5)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window(predict, image, window=32, overlap=1.0)


def test_datamodule_trains_on_patches_and_evaluates_whole_images(synthetic_root):
    dm = TJDRDataModule(
        root=str(synthetic_root / "tjdr"),
        image_size=96,
        patch_size=48,
        lesion_patch_share=1.0,
        batch_size=2,
        augment=NO_AUGMENTATION,
    )
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train["image"].shape[-2:] == (48, 48) and train["mask"].shape[-2:] == (48, 48)
    assert val["image"].shape[-2:] == (96, 96)
    dataset = dm.datasets["train"]
    for i in range(len(dataset)):
        has_lesion = (dataset.load(i)[1] == 1).any()  # grade-0 eyes have none
        assert (dataset[i]["mask"] == 1).any() == has_lesion
    repeated = TJDRDataModule(
        root=str(synthetic_root / "tjdr"),
        image_size=96,
        patch_size=48,
        patches_per_image=3,
        batch_size=2,
    )
    repeated.setup("fit")
    assert len(repeated.train_dataloader().dataset) == 3 * len(dataset)
    with pytest.raises(ValueError, match="patch_size"):
        TJDRDataModule(root=".", image_size=64, patch_size=128)


def test_task_evaluates_large_images_by_sliding_window():
    from multitask_dr.models.network import NetworkConfig
    from multitask_dr.tasks.multitask import MultiTaskDR

    torch.manual_seed(0)
    task = MultiTaskDR(
        network=NetworkConfig(encoder="tu-test_resnet", decoder_channels=[16, 16, 8, 8, 8]),
        eval_window=64,
        eval_overlap=0.25,
    ).eval()
    image = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        windowed = task.evaluation_forward(image)["lesion_logits"]
        whole = task(image)["lesion_logits"]
        first = task.net.lesion_logits(image[..., :64, :64])
    assert windowed.shape == whole.shape == (1, 4, 128, 128)
    assert not torch.allclose(windowed, whole)
    # The top-left corner is covered by one window only: it equals that window's output.
    assert torch.allclose(windowed[..., :8, :8], first[..., :8, :8], atol=1e-5)
