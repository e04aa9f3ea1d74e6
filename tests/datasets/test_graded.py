"""Graded public layouts: every publisher's files as shipped, and the real EyePACS sample."""

from pathlib import Path

import numpy as np
import pytest

from multitask_dr.datamodules import GradedFolderDataModule
from multitask_dr.datasets.graded import UNGRADABLE, GradedFolderDataset
from multitask_dr.datasets.problems import DataError
from tests import public_layouts

EYEPACS_SAMPLE = Path("../shared/data/eyepacs_sample")


def grades_of(dataset: GradedFolderDataset) -> dict[str, int]:
    return {r.name: r.grade for r in dataset.records}


def test_eyepacs_layout(tmp_path: Path) -> None:
    expected = public_layouts.write_eyepacs(tmp_path, n=6)
    dataset = GradedFolderDataset(tmp_path, "eyepacs", image_size=16)
    assert grades_of(dataset) == expected
    sample = dataset[0]
    assert sample["image"].shape == (16, 16, 3) and sample["image"].dtype == np.uint8
    assert sample["grade"] == expected[sample["name"]]
    assert len(dataset.problems) == 0


def test_aptos_layout(tmp_path: Path) -> None:
    expected = public_layouts.write_aptos(tmp_path, n=5)
    assert grades_of(GradedFolderDataset(tmp_path, "aptos")) == expected


def test_messidor2_skips_and_counts_ungradable(tmp_path: Path) -> None:
    expected, ungradable = public_layouts.write_messidor2(tmp_path, n=6)
    dataset = GradedFolderDataset(tmp_path, "messidor2")
    assert grades_of(dataset) == expected  # .png and .JPG image_ids both found
    assert dataset.ungradable == 2
    reasons = [p.reason for p in dataset.problems.problems if p.skipped == UNGRADABLE]
    assert [r.split(": ")[1].split()[0] for r in reasons] == ungradable
    strict = GradedFolderDataset(tmp_path, "messidor2", strict=True)  # not a fault: no raise
    assert grades_of(strict) == expected and strict.ungradable == 2
    (tmp_path / "IMAGES" / "20051020_43808_0100_PP.JPG").unlink()
    with pytest.raises(DataError, match="no image file for this row"):
        GradedFolderDataset(tmp_path, "messidor2", strict=True)


def test_idrid_grading_splits_share_names(tmp_path: Path) -> None:
    expected = public_layouts.write_idrid_grading(tmp_path, n=4)
    train = GradedFolderDataset(tmp_path, "idrid", "train")
    test = GradedFolderDataset(tmp_path, "idrid", "test")
    assert grades_of(train) == expected["train"] and grades_of(test) == expected["test"]
    assert grades_of(train) != grades_of(test) and set(grades_of(train)) == set(grades_of(test))
    assert len(train.problems) == 0  # the trailing-space header and empty columns are fine


def test_ddr_grading_skips_grade_5(tmp_path: Path) -> None:
    expected = public_layouts.write_ddr_grading(tmp_path, n=5)
    for split in ("train", "valid", "test"):
        dataset = GradedFolderDataset(tmp_path, "ddr", split)
        assert grades_of(dataset) == expected[split]
        assert dataset.ungradable == 1 and len(dataset.problems) == 1


def test_bad_rows_are_reported(tmp_path: Path) -> None:
    public_layouts.write_eyepacs(tmp_path, n=4)
    labels = tmp_path / "trainLabels.csv"
    labels.write_text(labels.read_text() + "ghost,2\n1_left,3\n")
    (tmp_path / "train" / "0_left.jpeg").unlink()
    dataset = GradedFolderDataset(tmp_path, "eyepacs")
    reasons = sorted(p.reason for p in dataset.problems.problems)
    assert reasons == [
        "line 2: 0_left: no image file for this row",
        "line 6: ghost: no image file for this row",
        "line 7: 1_left: listed twice (the first row is kept)",
    ]
    labels.write_text("image,grade\n")
    with pytest.raises(DataError, match=r"needs the columns \['level'\]"):
        GradedFolderDataset(tmp_path, "eyepacs")


def test_out_of_range_grade(tmp_path: Path) -> None:
    public_layouts.write_aptos(tmp_path, n=3)
    labels = tmp_path / "train.csv"
    lines = labels.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",7"
    labels.write_text("\n".join(lines) + "\n")
    dataset = GradedFolderDataset(tmp_path, "aptos")
    assert len(dataset) == 2
    assert [p.reason.rsplit(": ", 1)[1] for p in dataset.problems.problems] == [
        "grade 7 is outside 0-4"
    ]


def test_datamodule_official_and_drawn_splits(tmp_path: Path) -> None:
    expected = public_layouts.write_ddr_grading(tmp_path / "ddr", n=4)
    dm = GradedFolderDataModule(str(tmp_path / "ddr"), "ddr", image_size=16)
    dm.setup("fit")
    for split, official in (("train", "train"), ("val", "valid"), ("test", "test")):
        assert {r.name for r in dm.datasets[split].records} == set(expected[official])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (3, 16, 16)

    public_layouts.write_aptos(tmp_path / "aptos", n=20)
    dm = GradedFolderDataModule(
        str(tmp_path / "aptos"), "aptos", image_size=16, val_fraction=0.25, split_seed=3
    )
    dm.setup("fit")
    names = {s: {r.name for r in d.records} for s, d in dm.datasets.items()}
    assert sum(map(len, names.values())) == 20
    assert len(names["test"]) == 5 and len(names["val"]) == 5  # one per grade each
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"])
    again = GradedFolderDataModule(str(tmp_path / "aptos"), "aptos", image_size=16, split_seed=3)
    assert {r.name for r in again.splits()["test"].records} == names["test"]


def test_real_eyepacs_sample() -> None:
    if not EYEPACS_SAMPLE.is_dir():
        pytest.skip(f"real EyePACS sample not available at {EYEPACS_SAMPLE}")
    dataset = GradedFolderDataset(EYEPACS_SAMPLE, "eyepacs", image_size=32)
    assert len(dataset) == 6 and len(dataset.problems) == 0
    grades = grades_of(dataset)
    assert grades["10_left"] == 0 and grades["16_left"] == 4
    sample = dataset[[r.name for r in dataset.records].index("16_left")]
    assert sample["image"].shape == (32, 32, 3) and sample["image"].max() > 50


def test_synthetic_eyepacs_folder(tmp_path: Path) -> None:
    root = tmp_path / "eyepacs"
    dm = GradedFolderDataModule(
        str(root), image_size=32, synthetic={"n": 10, "size": 64, "seed": 0}
    )
    dm.prepare_data()
    dm.setup("fit")
    sizes = {s: len(d) for s, d in dm.datasets.items()}
    assert sum(sizes.values()) == 10 and sizes["train"] >= 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (3, 32, 32) and batch["grade"].min() >= 0
    with pytest.raises(ValueError, match="eyepacs layout"):
        GradedFolderDataModule(str(root), "aptos", synthetic={"n": 2})


def test_eyepacs_released_test_labels_are_the_test_split(tmp_path: Path) -> None:
    train = public_layouts.write_eyepacs(tmp_path, n=10)
    test = public_layouts.write_eyepacs_test(tmp_path, n=4)
    assert grades_of(GradedFolderDataset(tmp_path, "eyepacs", "test")) == test
    dm = GradedFolderDataModule(str(tmp_path), image_size=16)
    parts = {s: {r.name for r in d.records} for s, d in dm.splits().items()}
    assert parts["test"] == set(test) and parts["train"] | parts["val"] == set(train)
