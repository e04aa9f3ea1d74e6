"""W&B dashboard media read back from an offline run (the session's ``fitted`` run)."""

import json
import re
import time

import numpy as np

from multitask_dr.lesions import LESIONS
from tests.fitted_run import run_cli


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


def test_wandb_disabled_writes_nothing(fitted, tmp_path, monkeypatch):
    config, out = fitted
    monkeypatch.setenv("WANDB_MODE", "disabled")
    save_dir = tmp_path / "disabled"
    args = ["validate", "--config", str(config), "--ckpt_path", str(out / "ckpt" / "best.ckpt")]
    args += ["--trainer.logger.init_args.save_dir", str(save_dir)]
    assert run_cli(args) == 0
    assert not save_dir.exists() or not any(save_dir.rglob("*"))
