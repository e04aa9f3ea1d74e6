"""WandbMedia's collections: partially annotated sources (unannotated lesion types are unknown,
not 0), and the confusion matrix counted from the outputs the task returns."""

import sys
import types

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from multitask_dr.callbacks import WandbMedia
from multitask_dr.callbacks.charts import wandb_image
from multitask_dr.callbacks.figures import panel_figure, scored_lesions
from multitask_dr.lesions import IGNORE_INDEX, LESIONS
from multitask_dr.tasks.metrics import BinnedPrecisionRecallCurve

EX = LESIONS.index("EX")


def ex_only_batch() -> dict:
    mask = torch.full((2, len(LESIONS), 8, 8), IGNORE_INDEX, dtype=torch.uint8)
    mask[:, EX] = 0
    mask[0, EX, 2:4, 2:4] = 1
    mask[1, EX, 0, 0] = IGNORE_INDEX  # an ignore region inside the annotated channel
    return {"image": torch.rand(2, 3, 8, 8), "mask": mask, "grade": torch.tensor([-1, -1])}


def test_scored_lesions_reads_which_channels_a_source_annotates():
    batch = ex_only_batch()
    expected = [lesion == "EX" for lesion in LESIONS]
    assert scored_lesions(batch["mask"][0]) == expected
    assert scored_lesions(batch["mask"][1]) == expected


def test_table_leaves_unannotated_true_areas_empty():
    batch = ex_only_batch()
    media = WandbMedia(lesion_effects=False)
    probs = torch.zeros(2, len(LESIONS), 8, 8)
    grade_probs = torch.full((2, 5), 0.2)
    rows = media._table_rows("heimed", batch, probs, grade_probs, batch["mask"], None, None)
    assert rows[0]["EX_area_true"] == 4 and rows[1]["EX_area_true"] == 0
    for lesion in ("MA", "HE", "SE"):
        assert rows[0][f"{lesion}_area_true"] is None and rows[0][f"{lesion}_count_true"] is None
        assert rows[0][f"{lesion}_area_pred"] == 0  # predictions are still reported


def test_panel_overlays_only_annotated_lesions(monkeypatch):
    captured = {}

    def image(data, masks, caption):
        captured["masks"] = masks
        return "image"

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Image=image))
    batch = ex_only_batch()
    media = WandbMedia(num_images=1)
    probs, grade_probs = torch.zeros(2, 4, 8, 8), torch.full((2, 5), 0.2)
    media._add_to_panel(batch, probs, grade_probs, batch["mask"], None)
    item = media._panel[0]
    wandb_image(item)
    assert {k for k in captured["masks"] if k.startswith("true_")} == {"true_EX"}
    assert len([k for k in captured["masks"] if k.startswith("pred_")]) == len(LESIONS)
    figure = panel_figure([item])
    titles = [ax.get_title() for ax in figure.axes]
    assert "true lesions (EX only annotated)" in titles


def test_confusion_matrix_is_counted_from_the_task_outputs():
    media = WandbMedia(num_images=0, table=False)
    media._confusion = MulticlassConfusionMatrix(5)
    media._pr = BinnedPrecisionRecallCurve(len(LESIONS), 10, ignore_index=IGNORE_INDEX)
    trainer = types.SimpleNamespace(datamodule=None, is_global_zero=True)
    grades = torch.tensor([0, 1, 2, 3, 4, 4, -1])  # the last image is not graded
    probs = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 3, 0]), 5).float()
    batch = {"image": torch.rand(7, 3, 8, 8), "grade": grades}
    outputs = {"batch": {"grade_probs": probs, "lesion_probs": torch.zeros(7, 4, 8, 8)}}
    media._collect(trainer, None, outputs, batch, 0)
    confusion = media._confusion.compute()
    assert confusion[4, 3] == 1
    assert confusion.sum() == 6
