import cv2
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities import CombinedLoader

from multitask_dr.datamodules import (
    Augmentation,
    JointDataModule,
    RetinaMNISTDataModule,
    TJDRDataModule,
)
from multitask_dr.datamodules.base import stratified_split
from multitask_dr.datamodules.transforms import channel_stats
from multitask_dr.datasets.preprocess import FOV_THRESHOLD
from multitask_dr.datasets.problems import DataError
from tests.conftest import shared_path


def tjdr(root, **kwargs):
    return TJDRDataModule(root=str(root), image_size=64, batch_size=2, **kwargs)


def test_tjdr_batches_have_tensors_in_channel_order(synthetic_root):
    dm = tjdr(synthetic_root / "tjdr")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 4, 64, 64) and batch["mask"].dtype == torch.uint8
    assert set(torch.unique(batch["mask"]).tolist()) <= {0, 1, 255}
    assert batch["grade"].dtype == torch.long and (batch["grade"] >= 0).all()  # synthetic grades
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 10
    assert set(dm.datasets["train"].records).isdisjoint(dm.datasets["val"].records)


def test_tjdr_split_and_augmentation_follow_the_seed(synthetic_root):
    def first_batch(seed):
        dm = tjdr(synthetic_root / "tjdr", seed=seed)
        dm.setup("fit")
        return [r.name for r in dm.datasets["val"].records], next(iter(dm.train_dataloader()))

    names_a, batch_a = first_batch(0)
    names_b, batch_b = first_batch(0)
    names_c, batch_c = first_batch(1)
    assert names_a == names_b and torch.equal(batch_a["image"], batch_b["image"])
    assert names_a != names_c or not torch.equal(batch_a["image"], batch_c["image"])


def test_stratified_split_keeps_every_stratum_in_validation():
    names = [f"{i:03d}" for i in range(20)]
    strata = [0] * 10 + [1] * 6 + [2] * 4
    train, val = stratified_split(names, strata, 0.25, seed=3)
    assert sorted(train + val) == names and not set(train) & set(val)
    val_strata = {strata[names.index(n)] for n in val}
    assert val_strata == {0, 1, 2}
    assert stratified_split(names, strata, 0.25, seed=3) == (train, val)


def test_tjdr_on_the_real_release_sample(tmp_path):
    root = shared_path("tjdr_sample")
    dm = TJDRDataModule(
        root=str(root), image_size=128, batch_size=2, val_fraction=0.25, cache_dir=str(tmp_path)
    )
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.datasets["train"]) == 3 and len(dm.datasets["val"]) == 1
    batch = next(iter(dm.test_dataloader()))
    assert batch["mask"].shape == (2, 4, 128, 128)
    assert (batch["grade"] == -1).all()
    assert batch["mask"].sum() > 0


def test_tjdr_missing_root_is_a_clear_error(tmp_path):
    dm = tjdr(tmp_path / "nowhere")
    dm.prepare_data()  # no synthetic requested: nothing written
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        dm.setup("fit")


def test_synthetic_is_generated_on_first_use(tmp_path):
    dm = tjdr(tmp_path / "gen", synthetic={"n_train": 4, "n_test": 2, "size": 64, "seed": 0})
    dm.prepare_data()
    assert len(list((tmp_path / "gen" / "train" / "annotation").glob("*.png"))) == 4
    rm = RetinaMNISTDataModule(
        root=str(tmp_path / "rm"),
        size=28,
        image_size=32,
        synthetic={"n_train": 10, "n_val": 5, "n_test": 5, "seed": 0},
    )
    rm.prepare_data()
    rm.setup("test")
    assert next(iter(rm.test_dataloader()))["image"].shape == (5, 3, 32, 32)


def test_retinamnist_resizes_and_normalises_from_train_stats(synthetic_root):
    dm = RetinaMNISTDataModule(
        root=str(synthetic_root / "retinamnist"),
        size=28,
        image_size=48,
        batch_size=8,
        augment=Augmentation(hflip=0, vflip=0, rotate=0, brightness_contrast=0, saturation=0),
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 48, 48) and "mask" not in batch
    raw = dm.datasets["train"].images
    assert dm.mean == pytest.approx(channel_stats(raw)[0])
    retina = raw.reshape(-1, 3)[raw.reshape(-1, 3).max(1) >= FOV_THRESHOLD] / 255.0
    assert dm.mean == pytest.approx(retina.mean(0).tolist())  # the surround is left out
    assert dm.std == pytest.approx(retina.std(0).tolist())
    dm.datasets["train"].transform = dm.transform(train=False)
    sample = dm.datasets["train"][0]["image"]
    big = cv2.resize(raw[0], (48, 48), interpolation=cv2.INTER_LINEAR) / 255.0
    expected = (big - np.array(dm.mean)) / np.array(dm.std)
    assert np.allclose(sample.permute(1, 2, 0).numpy(), expected, atol=1e-4)


def test_weighted_sampler_balances_grades(synthetic_root):
    dm = RetinaMNISTDataModule(
        root=str(synthetic_root / "retinamnist"), batch_size=40, weighted_sampler=True
    )
    dm.setup("fit")
    loader = dm.train_dataloader()  # one loader, 10 epochs: 400 draws
    counts = np.bincount(
        torch.cat([b["grade"] for _ in range(10) for b in loader]).numpy(), minlength=5
    )
    present = counts[np.bincount(dm.datasets["train"].grades, minlength=5) > 0]
    assert present.min() > 0.6 * present.max()  # the file is 16:6:5:8:5


def test_retinamnist_on_the_real_file():
    root = shared_path("retinamnist")
    dm = RetinaMNISTDataModule(root=str(root), size=28, image_size=28, batch_size=50)
    dm.setup("test")
    assert len(dm.datasets["test"]) == 400


def test_joint_yields_both_sources_per_step(synthetic_root):
    seg = tjdr(synthetic_root / "tjdr")
    grade = RetinaMNISTDataModule(
        root=str(synthetic_root / "retinamnist"), size=28, image_size=32, batch_size=8
    )
    joint = JointDataModule(seg, grade)
    joint.setup("fit")
    loader = joint.train_dataloader()
    assert isinstance(loader, CombinedLoader)
    batch, _, _ = next(iter(loader))
    assert batch["segmentation"]["image"].shape[-1] == 64
    assert batch["grading"]["image"].shape[-1] == 32
    assert len(joint.val_dataloader()) == 2


def test_training_stream_follows_seed_and_pass_not_workers_or_history(synthetic_root):
    """What makes a resumed fit exact: pass k is the same batch stream however it is reached."""

    def passes(num_workers: int, start: int = 0, count: int = 2) -> list[torch.Tensor]:
        dm = tjdr(synthetic_root / "tjdr", num_workers=num_workers)
        dm.setup("fit")
        dm.load_state_dict({"train_passes": start})  # as a checkpoint restores it
        loader = dm.train_dataloader()
        return [torch.cat([batch["image"] for batch in loader]) for _ in range(count)]

    straight, workers, resumed = passes(0), passes(2), passes(0, start=1, count=1)
    assert torch.equal(straight[0], workers[0]) and torch.equal(straight[1], workers[1])
    assert torch.equal(straight[1], resumed[0])
    assert not torch.equal(straight[0], straight[1])  # each pass its own order and augmentation


def test_augmentation_operations_draw_independently():
    """albumentations' set_random_seed seeds every op alike: both flips or neither, always."""
    from multitask_dr.datamodules.transforms import SampleTransform, augmentation_ops

    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    flips = Augmentation(0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    transform = SampleTransform(augmentation_ops(flips, 4), (0.0,) * 3, (1.0,) * 3)
    seen = set()
    for seed in range(40):
        transform.set_random_seed(seed)
        out = np.rint(transform({"image": image, "grade": 0})["image"][0].numpy() * 255)
        seen.add((bool(out[0, 0] == image[0, -1, 0]), bool(out[0, 0] == image[-1, 0, 0])))
    assert {(True, False), (False, True)} <= seen


def test_tjdr_rasterize_setting_reaches_the_datasets_and_is_checked(synthetic_root):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TJDRDataModule, "data")
    parsed = parser.parse_args(["--data.root", str(synthetic_root / "tjdr")])
    assert parsed.data.rasterize == "labelme"  # the default, from YAML's point of view too
    parsed = parser.parse_args(["--data.rasterize", "pixel_centre"])
    assert parsed.data.rasterize == "pixel_centre"
    with pytest.raises(Exception, match="rasterize"):
        parser.parse_args(["--data.rasterize", "pixel-center"])
    dm = tjdr(synthetic_root / "tjdr", rasterize="pixel_centre", annotation="labelme")
    assert dm.dataset("train").rasterize == "pixel_centre"
    with pytest.raises(ValueError, match="unknown rasterize rule"):
        tjdr(synthetic_root / "tjdr", rasterize="scanline")
