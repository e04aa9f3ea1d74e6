"""Partially annotated lesion sources: flat Labelme folders, coverage, several sources at once."""

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from lightning import Trainer

from multitask_dr.datamodules import JointDataModule, TJDRDataModule
from multitask_dr.lesions import IGNORE_INDEX, LESIONS
from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR
from tests.cli_config import TINY_MODEL, TINY_NETWORK
from tests.conftest import shared_path

EX = LESIONS.index("EX")
HEIMED_LABELS = {"Exudate": "EX", "Other Bright Lesion": "ignore"}


@pytest.fixture(scope="module")
def flat_folder(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic TJDR's images and Labelme JSON, all in one flat folder."""
    folder = tmp_path_factory.mktemp("flat")
    for split in ("train", "test"):
        for path in (synthetic_root / "tjdr" / split / "image").iterdir():
            shutil.copy(path, folder / f"{split}_{path.name}")
    return folder


def flat(folder: Path, tmp_path: Path, **kwargs) -> TJDRDataModule:
    settings = {"image_size": 64, "batch_size": 2, "cache_dir": str(tmp_path / "cache")}
    return TJDRDataModule(str(folder), layout="flat", **settings | kwargs)


def test_flat_folder_is_split_by_seed_into_disjoint_parts_written_down(flat_folder, tmp_path):
    data = flat(flat_folder, tmp_path, val_fraction=0.25, test_fraction=0.25, seed=3)
    data.setup("fit")
    data.setup("test")
    parts = {name: {r.name for r in data.datasets[name].records} for name in ("train", "val")}
    parts["test"] = {r.name for r in data.datasets["test"].records}
    assert sum(map(len, parts.values())) == 14
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"])
    assert not parts["val"] & parts["test"] and parts["val"] and parts["test"]
    with (tmp_path / "cache" / "split-seed3.csv").open() as handle:
        written = {row["name"]: row["split"] for row in csv.DictReader(handle)}
    assert written == {n: split for split, names in parts.items() for n in names}

    again = flat(flat_folder, tmp_path / "again", val_fraction=0.25, test_fraction=0.25, seed=3)
    again.setup("test")
    assert {r.name for r in again.datasets["test"].records} == parts["test"]
    # split_seed fixes the split while the training seed changes.
    other = flat(flat_folder, tmp_path / "o", test_fraction=0.25, seed=9, split_seed=3)
    other.setup("test")
    assert {r.name for r in other.datasets["test"].records} == parts["test"]


def test_unannotated_lesions_are_unscored_never_background(flat_folder, tmp_path):
    data = flat(flat_folder, tmp_path, annotated_lesions=["EX"], patch_size=32)
    data.setup("fit")
    for name in ("train", "val"):
        for sample in data.datasets[name]:
            mask = np.asarray(sample["mask"])
            others = [c for c in range(len(LESIONS)) if c != EX]
            assert (mask[others] == IGNORE_INDEX).all()
            assert (mask[EX] != IGNORE_INDEX).any()
    with pytest.raises(ValueError, match="annotated_lesions"):
        TJDRDataModule(str(flat_folder), annotated_lesions=["exudates"])


@pytest.mark.parametrize("layout_problem", ["png"])
def test_flat_folder_holds_labelme_only(flat_folder, tmp_path, layout_problem):
    data = flat(flat_folder, tmp_path, annotation=layout_problem)
    with pytest.raises(ValueError, match="Labelme"):
        data.setup("fit")


def test_real_heimed_files_read_as_an_exudate_only_flat_source(tmp_path):
    source = shared_path("heimed_labelme")
    folder = tmp_path / "heimed"
    folder.mkdir()
    for name in ("00000052", "00000101", "00000105", "00000120", "00000122", "00000135"):
        for suffix in (".jpg", ".json"):
            if (source / f"{name}{suffix}").exists():
                shutil.copy(source / f"{name}{suffix}", folder)
    data = flat(
        folder,
        tmp_path,
        image_size=128,
        annotated_lesions=["EX"],
        label_map=HEIMED_LABELS,
        val_fraction=0.2,
        test_fraction=0.2,
        strict=True,  # every label of the files is mapped: nothing to report
    )
    data.setup("fit")
    sample = data.datasets["train"][0]
    mask = np.asarray(sample["mask"])
    assert (mask[EX] == 1).any()
    assert (mask[[c for c in range(len(LESIONS)) if c != EX]] == IGNORE_INDEX).all()


def test_two_lesion_sources_train_together_and_are_scored_apart(
    synthetic_root, flat_folder, tmp_path
):
    exudates = flat(flat_folder, tmp_path, annotated_lesions=["EX"], name="exudates")
    full = TJDRDataModule(
        str(synthetic_root / "tjdr"), image_size=64, batch_size=2, cache_dir=str(tmp_path / "c2")
    )
    full.name = "phantoms"
    joint = JointDataModule([exudates, full])
    assert joint.lesion_sources == ["exudates", "phantoms"]
    task = MultiTaskDR(network=NetworkConfig(**TINY_NETWORK, conditioning="none"))
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_test_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, datamodule=joint)
        results = trainer.test(task, datamodule=joint, verbose=False)
    metrics = {key: value for result in results for key, value in result.items()}
    assert "test/seg/exudates/aupr_EX" in metrics and "test/seg/phantoms/aupr_EX" in metrics
    # The exudate-only source scores nothing for the lesions it does not annotate.
    for lesion in ("MA", "HE", "SE"):
        assert np.isnan(metrics[f"test/seg/exudates/aupr_{lesion}"])
    assert not np.isnan(metrics["test/seg/phantoms/aupr_mean"])
    assert set(joint.state_dict()) == {"exudates", "phantoms"}


def test_joint_config_with_a_list_of_lesion_sources_parses(tmp_path, capsys):
    from multitask_dr.cli import main

    source = {"class_path": "multitask_dr.datamodules.TJDRDataModule", "init_args": {}}
    config = {
        "model": TINY_MODEL,
        "data": {
            "class_path": "multitask_dr.datamodules.JointDataModule",
            "init_args": {
                "segmentation": [
                    source | {"init_args": {"root": "a", "name": "heimed"}},
                    source | {"init_args": {"root": "b", "annotated_lesions": ["EX"]}},
                ]
            },
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert [s["init_args"]["root"] for s in printed["segmentation"]] == ["a", "b"]
    assert printed["segmentation"][1]["init_args"]["annotated_lesions"] == ["EX"]
    assert printed["grading"] is None
