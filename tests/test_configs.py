"""Every YAML in configs/ must parse through the real CLI (catches renamed arguments)."""

from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main

CONFIGS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")
    if "sweeps" not in p.parts  # sweep files are read by `wandb sweep`, not by the CLI
)


# Overlays and the base each goes on (`--config base --config overlay`).
OVERLAYS = {
    "demo_csv.yaml": "demo.yaml",
    "retinamnist_pretrained.yaml": "retinamnist.yaml",
    "joint_real.yaml": "real_lesions.yaml",
    "joint_graded.yaml": "demo.yaml",
}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_parses(config, capsys):
    args = ["fit", "--config", str(config), "--print_config"]
    if config.name in OVERLAYS:
        args = ["fit", "--config", str(config.parent / OVERLAYS[config.name]), *args[1:]]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["network"]["encoder"]
    assert printed["data"]["class_path"].startswith("multitask_dr.datamodules.")


def test_pretrained_retinamnist_overlay_keeps_the_base_and_starts_from_imagenet(capsys):
    base = CONFIGS[0].parent / "retinamnist.yaml"
    overlay = CONFIGS[0].parent / "retinamnist_pretrained.yaml"
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(base), "--config", str(overlay), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["network"]["encoder"] == "tu-efficientnet_lite0"
    assert printed["model"]["network"]["encoder_weights"] == "imagenet"
    # What the overlay does not name comes from the base.
    assert printed["data"]["init_args"]["root"] == "../shared/data/retinamnist"
    assert printed["model"]["tta"] == "flips"


def test_joint_real_overlay_adds_grading_to_both_real_lesion_sources(capsys):
    folder = CONFIGS[0].parent
    args = [
        "--config",
        str(folder / "real_lesions.yaml"),
        "--config",
        str(folder / "joint_real.yaml"),
    ]
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert [s["init_args"]["name"] for s in printed["segmentation"]] == ["heimed", "idrid"]
    assert printed["grading"]["class_path"].endswith("RetinaMNISTDataModule")


def test_joint_graded_overlay_swaps_in_the_graded_folder(capsys):
    folder = CONFIGS[0].parent
    args = ["fit", "--config", str(folder / "demo.yaml"), "--config"]
    with pytest.raises(SystemExit):
        main([*args, str(folder / "joint_graded.yaml"), "--print_config"])
    grading = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]["grading"]
    assert grading["class_path"] == "multitask_dr.datamodules.GradedFolderDataModule"
    assert grading["init_args"]["layout"] == "eyepacs" and grading["init_args"]["synthetic"]


def test_joint_graded_fits_and_tests_on_its_synthetic_default(tmp_path):
    import csv
    import warnings

    folder = CONFIGS[0].parent
    base = ["--config", str(folder / "demo.yaml"), "--config", str(folder / "joint_graded.yaml")]
    tiny = [
        "--model.network.encoder", "tu-test_resnet",
        "--model.network.encoder_weights", "null",
        "--model.network.decoder_channels", "[16, 16, 8, 8, 8]",
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2",
        "--trainer.callbacks", "null",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.segmentation.init_args.root", str(tmp_path / "tjdr"),
        "--data.init_args.segmentation.init_args.synthetic",
        "{n_train: 6, n_test: 4, size: 64, seed: 0}",
        "--data.init_args.segmentation.init_args.image_size", "64",
        "--data.init_args.grading.init_args.root", str(tmp_path / "eyepacs"),
        "--data.init_args.grading.init_args.synthetic", "{n: 12, size: 96, seed: 0}",
        "--data.init_args.grading.init_args.image_size", "64",
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", *base, *tiny]) == 0
        assert main(["test", *base, *tiny]) == 0
    rows = []
    for path in sorted(tmp_path.rglob("metrics.csv")):
        with path.open() as handle:
            rows += list(csv.DictReader(handle))
    logged = {k for row in rows for k, v in row.items() if v}
    # Lesions from the phantoms and grades from the full-resolution graded folder, both scored.
    assert {"test/seg/aupr_mean", "test/grade/auc", "val/grade/qwk"} <= logged
