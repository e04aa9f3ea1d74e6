"""Public per-lesion-file layouts (IDRiD, DDR, FGADR) read through TJDRDataset, quirks included."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multitask_dr.datamodules import TJDRDataModule
from multitask_dr.datasets.lesion_files import read_lesion_mask
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.lesions import IGNORE_INDEX
from tests import public_layouts


def masks_of(dataset: TJDRDataset) -> dict[str, np.ndarray]:
    return {r.name: dataset.load_raw(r)[1] for r in dataset.records}


def assert_masks(dataset: TJDRDataset, expected: dict[str, np.ndarray]) -> None:
    got = masks_of(dataset)
    assert sorted(got) == sorted(expected)
    for name, mask in expected.items():
        np.testing.assert_array_equal(got[name], mask, err_msg=name)


def test_idrid_segmentation(tmp_path: Path) -> None:
    expected = public_layouts.write_idrid_segmentation(tmp_path)
    for split in ("train", "test"):
        dataset = TJDRDataset(tmp_path, split, layout="idrid")
        assert_masks(dataset, expected[split])
        assert len(dataset.problems) == 0
    # Absent SE file: no soft exudate (IDRiD annotated it), scored background, not unscored.
    test = TJDRDataset(tmp_path, "test", layout="idrid")
    mask = test[[r.name for r in test.records].index("IDRiD_05")]["mask"]
    assert (mask[..., 3] == 0).all() and mask.dtype == np.uint8


def test_rgba_mask_reads_colour_not_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[1, 2, 0] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.tif")
    lesion = read_lesion_mask(tmp_path / "m.tif")
    assert lesion.sum() == 1 and lesion[1, 2]


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_single_plane_masks_read_by_stored_value(tmp_path: Path, mode: str) -> None:
    plane = np.zeros((4, 4), np.uint8)
    plane[0, 1] = plane[3, 3] = 1 if mode == "P" else 76  # 76: IDRiD's red, as grey
    if mode == "1":
        image = Image.fromarray(plane > 0)  # a 1-bit image
    elif mode == "L":
        image = Image.fromarray(plane, mode="L")
    else:
        image = Image.fromarray(plane, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert image.mode == mode
    image.save(tmp_path / "m.tif")
    lesion = read_lesion_mask(tmp_path / "m.tif")
    assert lesion.sum() == 2 and lesion[0, 1] and lesion[3, 3]


def test_ddr_segmentation_valid_folder_has_a_space(tmp_path: Path) -> None:
    expected = public_layouts.write_ddr_segmentation(tmp_path)
    for split in ("train", "valid", "test"):
        assert_masks(TJDRDataset(tmp_path, split, layout="ddr"), expected[split])
    train = masks_of(TJDRDataset(tmp_path, "train", layout="ddr"))
    assert (train["20170113102t"][..., 3] == IGNORE_INDEX).all()  # absent SE: unscored


def test_fgadr_grades_and_absent_masks(tmp_path: Path) -> None:
    masks, grades = public_layouts.write_fgadr(tmp_path, n=5)
    dataset = TJDRDataset(tmp_path, layout="fgadr")
    assert_masks(dataset, masks)
    assert {r.name: r.grade for r in dataset.records} == grades
    assert (masks_of(dataset)["0001_A"][..., 3] == IGNORE_INDEX).all()


def test_mask_size_mismatch_is_reported(tmp_path: Path) -> None:
    public_layouts.write_ddr_segmentation(tmp_path)
    bad = tmp_path / "lesion_segmentation/test/label/HE/20170013102t.tif"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad)
    dataset = TJDRDataset(tmp_path, "test", layout="ddr")
    dataset.verify()
    assert len(dataset) == 1
    assert [p.path for p in dataset.problems.problems] == [bad]
    assert "mask size (8, 8) differs" in dataset.problems.problems[0].reason
    with pytest.raises(ValueError, match="splits"):
        TJDRDataset(tmp_path, "val", layout="ddr")
    with pytest.raises(DataError, match="no image folder"):
        TJDRDataset(tmp_path / "lesion_segmentation", "test", layout="ddr")


def test_datamodule_ddr_official_valid(tmp_path: Path) -> None:
    expected = public_layouts.write_ddr_segmentation(tmp_path)
    dm = TJDRDataModule(str(tmp_path), image_size=16, layout="ddr")
    dm.setup("fit")
    assert {r.name for r in dm.datasets["val"].records} == set(expected["valid"])
    assert {r.name for r in dm.datasets["train"].records} == set(expected["train"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["mask"].shape[1:] == (4, 16, 16)


def test_datamodule_fgadr_drawn_test(tmp_path: Path) -> None:
    public_layouts.write_fgadr(tmp_path, n=10)
    dm = TJDRDataModule(str(tmp_path), image_size=16, layout="fgadr", split_seed=1)
    dm.setup(None)
    parts = {s: {r.name for r in d.records} for s, d in dm.datasets.items()}
    assert sum(map(len, parts.values())) == 10 and parts["test"]
    assert not (parts["test"] & parts["train"]) and not (parts["val"] & parts["train"])
    assert (tmp_path / ".cache" / "split-seed1.csv").is_file()


def test_check_data_reads_public_layouts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from multitask_dr.cli import main

    public_layouts.write_idrid_segmentation(tmp_path / "idrid")
    assert main(["check-data", str(tmp_path / "idrid"), "--format", "idrid"]) == 0
    text = capsys.readouterr().out
    assert "[train] 3 images" in text and "[test] 2 images" in text
    assert "mask file per lesion x3" in text
    public_layouts.write_ddr_grading(tmp_path / "ddr", n=3)
    assert main(["check-data", str(tmp_path / "ddr"), "--format", "ddr-grading"]) == 0
    text = capsys.readouterr().out
    assert "[valid] 2 images" in text and "problems: 0" in text
    assert text.count("ungradable images skipped: 1") == 3
    (tmp_path / "ddr" / "DR_grading" / "test" / "007-test-0000.jpg").unlink()
    assert main(["check-data", str(tmp_path / "ddr"), "--format", "ddr-grading"]) == 1
    assert "007-test-0000: no image file for this row" in capsys.readouterr().out


def test_public_sources_train_together(tmp_path: Path) -> None:
    from multitask_dr.datamodules import GradedFolderDataModule, JointDataModule

    public_layouts.write_idrid_segmentation(tmp_path / "idrid")
    public_layouts.write_ddr_segmentation(tmp_path / "ddr")
    public_layouts.write_idrid_grading(tmp_path / "idrid", n=6)  # the same IDRiD root
    lesions = [
        TJDRDataModule(str(tmp_path / name), image_size=16, layout=name, name=name, val_fraction=0)
        for name in ("idrid", "ddr")
    ]
    grading = GradedFolderDataModule(str(tmp_path / "idrid"), "idrid", image_size=16)
    joint = JointDataModule(lesions, grading)
    joint.setup("fit")
    batch = next(iter(joint.train_dataloader()))[0]
    assert sorted(batch) == ["ddr", "grading", "idrid"]
    assert batch["idrid"]["mask"].shape[1:] == (4, 16, 16)
    assert batch["grading"]["grade"].min() >= 0


def test_fgadr_label_file_problems(tmp_path: Path) -> None:
    public_layouts.write_fgadr(tmp_path, n=3)
    labels = tmp_path / "DR_Seg_Grading_Label.csv"
    labels.write_text("name,grade\n0001_A.png,2\n0002_B.png,7\n")
    dataset = TJDRDataset(tmp_path, layout="fgadr")
    assert [r.grade for r in dataset.records] == [2, -1, -1]
    assert [p.reason for p in dataset.problems.problems] == ["line 3: grade 7 is outside 0-4"]
    labels.unlink()
    (tmp_path / "Microaneurysms_Masks" / "9999_Z.png").write_bytes(b"")
    dataset = TJDRDataset(tmp_path, layout="fgadr")
    reasons = sorted(p.reason for p in dataset.problems.problems)
    assert reasons[0].startswith("MA mask has no image") and "ungraded" in reasons[1]


def test_check_data_on_the_real_eyepacs_sample(capsys: pytest.CaptureFixture) -> None:
    from multitask_dr.cli import main

    root = Path("../shared/data/eyepacs_sample")
    if not root.is_dir():
        pytest.skip(f"real EyePACS sample not available at {root}")
    assert main(["check-data", str(root), "--format", "eyepacs"]) == 0
    text = capsys.readouterr().out
    assert "[train] 6 images" in text and "problems: 0" in text


def test_fgadr_antialiased_edges_are_not_lesion(tmp_path: Path) -> None:
    masks, _ = public_layouts.write_fgadr(tmp_path, n=2)
    path = tmp_path / "HardExudate_Masks" / "0002_B.png"
    plane = np.asarray(Image.open(path)).copy()
    edge = (plane == 0) & (np.roll(plane, 1, axis=1) == 255)
    assert edge.any()
    plane[edge] = 100  # an anti-aliased rim below the midpoint
    plane[0, 0] = 128  # and one pixel at it
    Image.fromarray(plane).save(path)
    expected = masks["0002_B"][..., 2].copy()
    expected[0, 0] = 1
    got = TJDRDataset(tmp_path, layout="fgadr").load_raw(
        next(r for r in TJDRDataset(tmp_path, layout="fgadr").records if r.name == "0002_B")
    )[1]
    np.testing.assert_array_equal(got[..., 2], expected)
    assert read_lesion_mask(path)[edge].all()  # the default threshold: any non-zero value
