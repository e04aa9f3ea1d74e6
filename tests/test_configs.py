"""Every YAML in configs/ must parse through the real CLI (catches renamed arguments)."""

from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main

FOLDER = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(
    p
    for p in FOLDER.rglob("*.yaml")
    # sweep files are read by `wandb sweep`, not by the CLI; the base is under every command
    if "sweeps" not in p.parts and p.name != "base.yaml"
)


# Overlays and the configs each goes on, in order (`--config A --config B --config overlay`).
OVERLAYS = {
    "logger/csv.yaml": ["demo.yaml"],
    "retinamnist_pretrained.yaml": ["retinamnist.yaml"],
    "joint_real.yaml": ["real_lesions.yaml"],
    "eval_lesion_tta.yaml": ["real_lesions.yaml"],
    "eval_reads.yaml": ["real_lesions.yaml", "eval_lesion_tta.yaml"],
    "joint_graded.yaml": ["demo.yaml"],
    "sweeps/trial.yaml": ["demo.yaml"],
    "gpu/gpu.yaml": ["tjdr_retinamnist.yaml"],
    "gpu/ddp.yaml": ["tjdr_retinamnist.yaml", "gpu/gpu.yaml"],
    "gpu/multinode.yaml": ["tjdr_retinamnist.yaml", "gpu/gpu.yaml", "gpu/ddp.yaml"],
}


def name(path: Path) -> str:
    return path.relative_to(FOLDER).as_posix()


def stack(config: Path) -> list[str]:
    """``--config`` for each config ``config`` goes on, then for ``config``."""
    files = [FOLDER / p for p in OVERLAYS.get(name(config), [])] + [config]
    return [arg for path in files for arg in ("--config", str(path))]


def printed_config(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("config", CONFIGS, ids=name)
def test_config_parses(config, capsys):
    printed = printed_config(stack(config), capsys)
    assert printed["model"]["network"]["encoder"]
    assert printed["data"]["class_path"].startswith("multitask_dr.datamodules.")


def flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"a": {"init_args": {"b": 1}}}`` -> ``{"a.b": 1}`` (a group's init_args may be flat)."""
    out = {}
    for key, value in tree.items():
        path = prefix if key == "init_args" else f"{prefix}{key}."
        if isinstance(value, dict) and value:
            out |= flat(value, path)
        else:
            out[path.rstrip(".")] = value
    return out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS), ids=str)
def test_an_overlay_changes_only_the_keys_it_names(overlay, capsys):
    under = printed_config(stack(FOLDER / OVERLAYS[overlay][-1]), capsys)
    over = printed_config(stack(FOLDER / overlay), capsys)
    named = flat(yaml.safe_load((FOLDER / overlay).read_text()))
    # A new class_path brings that class's own init_args.
    swapped = [key.removesuffix("class_path") for key in named if key.endswith("class_path")]
    before, after = flat(under), flat(over)
    changed = {k for k in before.keys() | after.keys() if before.get(k, "-") != after.get(k, "-")}
    assert changed  # it does something
    for key in changed:
        # At or under a key it names, above one (a section it adds), or a swapped class's.
        assert any(
            key == n or key.startswith(f"{n}.") or n.startswith(f"{key}.") for n in named
        ) or any(key.startswith(prefix) for prefix in swapped), (
            f"{overlay} changed {key}, which it does not name"
        )


def test_every_run_keeps_best_and_last_in_its_folder_with_lr_and_media():
    """The base's callback groups, as the trainer gets them (an overlay naming one key)."""
    from lightning import LightningDataModule
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from multitask_dr.callbacks import WandbMedia
    from multitask_dr.lightning_cli import MultiTaskCLI
    from multitask_dr.tasks.multitask import MultiTaskDR

    tiny = ["--model.network.encoder", "tu-test_resnet", "--model.network.encoder_weights", "null"]
    cli = MultiTaskCLI(
        MultiTaskDR,
        LightningDataModule,
        subclass_mode_data=True,
        args=["--config", str(FOLDER / "demo.yaml"), *tiny, "--trainer.logger", "false"],
        run=False,
    )
    callbacks = cli.trainer.callbacks
    best, last = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)]
    assert (best.monitor, best.mode, best.filename) == ("val/score", "max", "best")
    assert (last.monitor, last.filename) == (None, "last")  # rewritten after every epoch
    assert Path(best.dirpath) == Path(last.dirpath) == Path("checkpoints/demo").resolve()
    assert sum(isinstance(cb, LearningRateMonitor) for cb in callbacks) == 1
    (media,) = [cb for cb in callbacks if isinstance(cb, WandbMedia)]
    assert (media.num_images, media.every_n_epochs) == (8, 4)


def test_pretrained_retinamnist_overlay_keeps_the_base_and_starts_from_imagenet(capsys):
    base = FOLDER / "retinamnist.yaml"
    overlay = FOLDER / "retinamnist_pretrained.yaml"
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(base), "--config", str(overlay), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["network"]["encoder"] == "tu-efficientnet_lite0"
    assert printed["model"]["network"]["encoder_weights"] == "imagenet"
    # What the overlay does not name comes from the base.
    assert printed["data"]["init_args"]["root"] == "../shared/data/retinamnist"
    assert printed["model"]["tta"] == "flips"


def test_joint_real_overlay_adds_grading_to_both_real_lesion_sources(capsys):
    folder = FOLDER
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
    folder = FOLDER
    args = ["fit", "--config", str(folder / "demo.yaml"), "--config"]
    with pytest.raises(SystemExit):
        main([*args, str(folder / "joint_graded.yaml"), "--print_config"])
    grading = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]["grading"]
    assert grading["class_path"] == "multitask_dr.datamodules.GradedFolderDataModule"
    assert grading["init_args"]["layout"] == "eyepacs" and grading["init_args"]["synthetic"]


def test_joint_graded_fits_and_tests_on_its_synthetic_default(tmp_path):
    import csv
    import warnings

    folder = FOLDER
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
        "--checkpoint.dirpath", str(tmp_path / "ckpt"),
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
