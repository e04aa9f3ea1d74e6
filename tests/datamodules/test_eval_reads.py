"""``eval_read_sizes``: evaluation batches carry the same photographs read at further sizes."""

import pytest
import torch

from multitask_dr.datamodules import TJDRDataModule
from multitask_dr.datasets.tjdr import TJDRDataset


def tjdr(root, tmp_path, **kwargs):
    settings = {"image_size": 64, "batch_size": 2, "cache_dir": str(tmp_path / "cache")}
    return TJDRDataModule(root=str(root), **settings | kwargs)


def test_evaluation_batches_carry_each_read_normalised_like_the_working_image(
    synthetic_root, tmp_path
):
    dm = tjdr(synthetic_root / "tjdr", tmp_path, eval_read_sizes=[96, 32])
    dm.setup("fit")
    assert "image_reads" not in next(iter(dm.train_dataloader()))  # training never reads them
    batch = next(iter(dm.val_dataloader()))
    big, small = batch["image_reads"]
    assert big.shape == (2, 3, 96, 96) and small.shape == (2, 3, 32, 32)
    assert batch["image"].shape == (2, 3, 64, 64) and big.dtype == torch.float32
    # A read is the working image of a datamodule at that size with the same normalisation.
    at96 = tjdr(synthetic_root / "tjdr", tmp_path, image_size=96, mean=dm.mean, std=dm.std)
    at96.setup("fit")
    assert [r.name for r in at96.datasets["val"].records] == [
        r.name for r in dm.datasets["val"].records
    ]
    assert torch.allclose(next(iter(at96.val_dataloader()))["image"], big)
    dm.setup("test")
    assert next(iter(dm.test_dataloader()))["image_reads"][0].shape == (2, 3, 96, 96)


def test_reads_are_cached_per_size(synthetic_root, tmp_path):
    dataset = TJDRDataset(synthetic_root / "tjdr", "train", image_size=64, read_sizes=[96])
    record = dataset.records[0]
    assert dataset.cache_key(record) != dataset.cache_key(record, 96)
    assert dataset.cache_key(record) == dataset.cache_key(record, 64)
    cached = TJDRDataset(
        synthetic_root / "tjdr", "train", image_size=64, read_sizes=[96], cache_dir=tmp_path
    )
    sample = cached[0]
    assert sample["image_reads"][0].shape == (96, 96, 3)  # no transform: uint8 as read
    assert len(list(tmp_path.glob("*.npz"))) == 2  # the working size and the read, apart


def test_predict_folder_reads_at_the_further_sizes(synthetic_root, tmp_path):
    folder = synthetic_root / "tjdr" / "test" / "image"
    dm = tjdr(synthetic_root / "tjdr", tmp_path, eval_read_sizes=[96], predict_dir=str(folder))
    dm.setup("fit")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64)
    assert batch["image_reads"][0].shape == (2, 3, 96, 96)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [([64], "holds 64, the working size"), ([96, 96], "twice"), ([0], "positive")],
)
def test_bad_read_sizes_are_named(synthetic_root, tmp_path, sizes, message):
    with pytest.raises(ValueError, match=message):
        tjdr(synthetic_root / "tjdr", tmp_path, eval_read_sizes=sizes)


def test_joint_eval_read_sizes_reach_every_lesion_source(synthetic_root, tmp_path):
    from multitask_dr.datamodules import JointDataModule

    first = tjdr(synthetic_root / "tjdr", tmp_path, name="a")
    second = tjdr(synthetic_root / "tjdr", tmp_path, name="b", image_size=32, eval_read_sizes=[48])
    joint = JointDataModule([first, second], eval_read_sizes=[96])
    assert first.eval_read_sizes == second.eval_read_sizes == (96,)
    assert JointDataModule([first, second]).segmentation.eval_read_sizes == (96,)  # unset: kept
    with pytest.raises(ValueError, match="holds 64, the working size"):
        JointDataModule([first], eval_read_sizes=[64])
    joint.setup("fit")
    assert next(iter(joint.val_dataloader()[1]))["image_reads"][0].shape[-1] == 96
