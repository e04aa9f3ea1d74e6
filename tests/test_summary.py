"""The short account printed after ``test --summary true``."""

import math

import torch

from multitask_dr.summary import summarise_run


def test_summary_lists_headline_metrics_outputs_and_next_commands():
    metrics = {
        "test/seg/aupr_mean": torch.tensor(0.6612),
        "test/seg/aupr_MA": 0.21,
        "test/seg/aupr_HE": torch.tensor(0.744),
        "test/seg/aupr_EX": 0.85,
        "test/seg/aupr_SE": 0.84,
        "test/grade/auc": 0.871,
        "test/grade/qwk": torch.tensor(0.849),
        "test/grade/acc": 0.7,
        "test/seg/dice_MA": 0.1,
    }
    text = summarise_run(
        metrics,
        checkpoint="checkpoints/demo/best.ckpt",
        run_dir="logs/wandb/offline-run-x",
        configs=["configs/demo.yaml"],
    )
    lines = text.splitlines()
    assert lines[0] == "What the model learned (test split):"
    assert "mAUPR 0.66  (MA 0.21  HE 0.74  EX 0.85  SE 0.84)" in text
    assert "AUC 0.87  QWK 0.85  accuracy 0.70" in text
    assert "checkpoints/demo/best.ckpt" in text
    assert "W&B run     logs/wandb/offline-run-x" in text
    assert "wandb sync logs/wandb/offline-run-x" in text
    online = summarise_run({}, run_dir="logs/wandb/run-20261201_1-abc")
    assert "W&B run     logs/wandb/run-20261201_1-abc" in online and "wandb sync" not in online
    assert (
        "multitask-dr predict --config configs/demo.yaml --ckpt_path checkpoints/demo/best.ckpt"
        in text
    )
    assert "02_lesion_grade_attribution.ipynb" in text


def test_summary_leaves_out_what_was_not_scored():
    grading_only = summarise_run({"test/grade/auc": 0.75, "test/grade/qwk": math.nan})
    assert "mAUPR" not in grading_only
    assert "AUC 0.75  QWK n/a" in grading_only
    assert "W&B run" not in grading_only and "checkpoint " not in grading_only
    assert "--config CONFIG --ckpt_path CKPT" in grading_only
    nothing = summarise_run({}, stage="val")
    assert "(val split)" in nothing and "no lesion or grade metric" in nothing
