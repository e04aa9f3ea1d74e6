"""W&B dashboard media read back from an offline run, ``predict`` on a folder, CLI usability.

One tiny joint model is trained once per module (W&B offline, ``bottleneck`` head so per-lesion
contributions exist); the tests read its run folder and predict from its checkpoint.
"""

import csv
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from multitask_dr.cli import main
from multitask_dr.datasets.folder import restore_geometry
from multitask_dr.datasets.preprocess import crop_and_resize
from multitask_dr.lesions import LESIONS, RELEASE_INDEX, RELEASE_PALETTE
from multitask_dr.predict import logit_contributions, release_index_mask
from tests.cli_config import tiny_joint_config

SWEEP = Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "joint.yaml"


def joint_config(root: Path, out: Path) -> dict:
    """Tiny joint model, one epoch of two steps, W&B + media + checkpoint."""
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
            "init_args": {"logging_interval": "epoch"},
        },
        {"class_path": "multitask_dr.callbacks.WandbMedia", "init_args": {"num_images": 2}},
    ]
    return tiny_joint_config(root, out, conditioning="bottleneck", callbacks=callbacks)


def run_cli(args: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(args)


@pytest.fixture(scope="module")
def wandb_env(tmp_path_factory):
    """Offline W&B whose caches and artifact staging stay in a temporary folder."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            patch.setenv(name, str(home / name.lower()))
        yield patch


@pytest.fixture(scope="module")
def fitted(synthetic_root, tmp_path_factory, wandb_env):
    """``(config path, output folder)`` of one finished ``fit``."""
    out = tmp_path_factory.mktemp("fit")
    config = out / "joint.yaml"
    config.write_text(yaml.safe_dump(joint_config(synthetic_root, out)))
    assert run_cli(["fit", "--config", str(config)]) == 0
    return config, out


def test_offline_run_holds_metrics_media_table_and_model_artifact(fitted):
    _, out = fitted
    (run,) = sorted((out / "wandb").glob("offline-run-*"))
    artifact = b"model-" + run.name.split("-")[-1].encode()
    # wandb.finish() alone returns before W&B's service process has written the artifact record;
    # the CLI's wandb.teardown() waits for it. Poll anyway, so a regression fails with a reason.
    deadline = time.monotonic() + 60
    while artifact not in (records := next(run.glob("run-*.wandb")).read_bytes()):
        assert time.monotonic() < deadline, "no model artifact record"
        time.sleep(0.5)
    assert b"best.ckpt" in records
    # History keys are stored as plain strings in the (otherwise private) record format.
    for key in (b"train/loss", b"val/score", b"val/seg/aupr_MA", b"val/grade/qwk", b"lr-AdamW"):
        assert key in records, key

    media = run / "files" / "media"
    images = {p.name.rsplit("_", 2)[0] for p in (media / "images" / "val").glob("*.png")}
    assert {"panel", "panel_figure", "confusion_figure", "pr_figure"} <= images
    panel = [p for p in (media / "images" / "val").glob("*.png") if re.match(r"panel_\d+_", p.name)]
    assert len(panel) == 2
    # One mask overlay per lesion, predicted and true (files are named by content: identical
    # masks, e.g. empty ones, share one file).
    assert list((media / "images" / "mask" / "val").glob("*.mask.png"))
    for kind in ("pred", "true"):
        for lesion in LESIONS:
            assert f"val/panel_wandb_delimeter_{kind}_{lesion}".encode() in records

    tables = {p.name.rsplit("_", 2)[0]: p for p in (media / "table" / "val").glob("*.json")}
    assert {"images", "confusion_table", "pr_curve_table"} <= set(tables)
    table = json.loads(tables["images"].read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    # limit_val_batches=2: 2 TJDR batches of 2 images + 2 RetinaMNIST batches of 8.
    assert len(rows) == 2 * 2 + 2 * 8
    sources = {row["source"] for row in rows}
    assert sources == {"segmentation", "grading"}
    assert sum(row["source"] == "grading" for row in rows) == 16
    for row in rows:
        assert abs(sum(row[f"p{g}"] for g in range(5)) - 1) < 1e-4
        assert row["grade_pred"] == int(np.argmax([row[f"p{g}"] for g in range(5)]))
        for lesion in LESIONS:
            assert row[f"{lesion}_contribution"] is not None  # bottleneck head
            assert (row[f"{lesion}_area_true"] is None) == (row["source"] == "grading")
    confusion = json.loads(tables["confusion_table"].read_text())
    assert sum(count for _, _, count in confusion["data"]) == len(rows)
    assert {row[0] for row in json.loads(tables["pr_curve_table"].read_text())["data"]} == set(
        LESIONS
    )


def test_predict_writes_masks_overlays_reports_and_summary(fitted, synthetic_root, tmp_path):
    config, out = fitted
    folder = tmp_path / "photos"
    folder.mkdir()
    test_images = sorted((synthetic_root / "tjdr" / "test" / "image").glob("*.png"))
    shutil.copy(test_images[0], folder / "a.png")
    rgb = Image.open(test_images[1]).convert("RGB")
    rgb.resize((150, 120)).save(folder / "wide.jpg", quality=95)  # other size, JPEG
    rgb.convert("L").save(folder / "grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    results = tmp_path / "results"
    # The data roots do not exist: the normalisation comes from the checkpoint.
    args = [
        "predict",
        "--config",
        str(config),
        "--ckpt_path",
        str(out / "ckpt" / "best.ckpt"),
        "--data.init_args.segmentation.init_args.root",
        str(tmp_path / "absent"),
        "--data.init_args.grading.init_args.root",
        str(tmp_path / "absent"),
        "--data.predict_dir",
        str(folder),
        "--prediction.output_dir",
        str(results),
        "--trainer.logger",
        "false",
    ]
    assert run_cli(args) == 0

    with (results / "summary.csv").open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"a", "wide", "grey", "broken"}
    assert "broken.png" in rows["broken"]["error"]
    for name in ("a", "wide", "grey"):
        assert rows[name]["error"] == ""
        source = next(folder.glob(f"{name}.*"))
        width, height = Image.open(source).size
        mask = Image.open(results / f"{name}_lesions.png")
        assert mask.mode == "P" and mask.size == (width, height)
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2, 3, 4}
        assert mask.getpalette()[:15] == [v for colour in RELEASE_PALETTE for v in colour]
        assert Image.open(results / f"{name}_overlay.png").size == (width, height)
        report = json.loads((results / f"{name}.json").read_text())
        assert report["grade"] == int(rows[name]["grade"]) in range(5)
        assert abs(sum(report["grade_probabilities"]) - 1) < 1e-4
        index = np.asarray(mask)
        for lesion in LESIONS:
            entry = report["lesions"][lesion]
            # Areas count each lesion on its own; the mask shows one lesion of overlaps.
            assert entry["area_px"] >= int((index == RELEASE_INDEX[lesion]).sum())
            assert entry["logit_contribution"] is not None
            assert entry["grade_effect"] is not None  # ablation through multitask_dr.attribution


def test_release_mask_applies_the_release_priority_where_lesions_overlap():
    # The same rule as every one-index file: EX before HE however probable each is.
    probs = np.zeros((4, 1, 4), dtype=np.float32)
    probs[LESIONS.index("HE"), 0] = [0.9, 0.6, 0.2, 0.7]
    probs[LESIONS.index("EX"), 0] = [0.7, 0.8, 0.3, 0.1]
    index = release_index_mask(probs, 0.5)
    assert index[0].tolist() == [RELEASE_INDEX["EX"], RELEASE_INDEX["EX"], 0, RELEASE_INDEX["HE"]]


def test_restore_geometry_inverts_crop_pad_and_resize():
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    image[10:50, 30:70] = 200  # a bright square "retina" off centre in a wide photograph
    image[20:30, 40:50] = 50
    small, _ = crop_and_resize(image, None, 20, crop_fov=True)
    maps = (small.max(axis=2, keepdims=True) > 100).astype(np.float32).transpose(2, 0, 1)
    box = (10, 30, 50, 70)
    restored = restore_geometry(maps, (60, 100), box)[0] > 0.5
    truth = image.max(axis=2) > 100
    assert restored.shape == truth.shape
    assert (restored != truth).mean() < 0.02  # only resampling at the edges differs


def test_logit_contributions_softmax_centred_and_coral():
    contributions = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]]])  # (B=1, L=2, G=3)
    probs = torch.tensor([[0.1, 0.2, 0.7]])
    assert logit_contributions(contributions, probs).tolist() == [[1.0, 2.0]]
    coral = torch.tensor([[[0.5], [-1.0]]])
    assert logit_contributions(coral, probs).tolist() == [[0.5, -1.0]]


def test_wandb_disabled_writes_nothing(fitted, tmp_path, monkeypatch):
    config, out = fitted
    monkeypatch.setenv("WANDB_MODE", "disabled")
    save_dir = tmp_path / "disabled"
    args = ["validate", "--config", str(config), "--ckpt_path", str(out / "ckpt" / "best.ckpt")]
    args += ["--trainer.logger.init_args.save_dir", str(save_dir)]
    assert run_cli(args) == 0
    assert not save_dir.exists() or not any(save_dir.rglob("*"))


def test_missing_data_root_is_one_clear_line(fitted, tmp_path, capsys):
    config, _ = fitted
    absent = tmp_path / "nowhere" / "tjdr"
    args = ["validate", "--config", str(config), "--trainer.logger", "false"]
    args += ["--data.init_args.segmentation.init_args.root", str(absent)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert f"multitask-dr: error: TJDR root {absent} does not exist" in err
    assert "Traceback" not in err


def test_top_level_help_lists_configs_and_extra_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("demo.yaml", "gpu/multinode.yaml", "synth", "check-data"):
        assert name in text
    assert "sweeps/" not in text


def test_sweep_parameters_are_options_of_fit(capsys):
    sweep = yaml.safe_load(SWEEP.read_text())
    command = sweep["command"]
    configs = [command[i + 1] for i, part in enumerate(command) if part == "--config"]
    args = ["fit"] + [a for c in configs for a in ("--config", str(SWEEP.parents[2] / c))]
    expected = {}
    for name, spec in sweep["parameters"].items():
        value = spec["values"][-1] if "values" in spec else spec["min"]
        args.append(f"--{name}={value}")  # how W&B's ${args} writes them
        expected[name] = value
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    for name, value in expected.items():
        node = printed
        for part in name.split("."):
            node = node[part]
        assert node == value, name
