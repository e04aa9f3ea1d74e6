"""Each evaluation metric is logged once, however many dataloaders the stage reads."""

import warnings

import lightning
import torch
from torch.utils.data import DataLoader

from multitask_dr.models.network import NetworkConfig
from multitask_dr.tasks.multitask import MultiTaskDR

from .conftest import TINY


def test_test_metrics_appear_in_one_dataloader_only():
    torch.manual_seed(0)
    mask = torch.zeros(2, 4, 32, 32, dtype=torch.uint8)
    mask[:, 1, 4:8, 4:8] = 1
    lesions = [{"image": torch.randn(2, 3, 32, 32), "mask": mask, "grade": torch.tensor([-1, -1])}]
    grades = [{"image": torch.randn(4, 3, 32, 32), "grade": torch.tensor([0, 1, 2, 3])}] * 2
    task = MultiTaskDR(network=NetworkConfig(**TINY))
    trainer = lightning.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaders = [DataLoader(batches, batch_size=None) for batches in (lesions, grades)]
        results = trainer.test(task, dataloaders=loaders, verbose=False)
    assert len(results) == 2
    keys = [set(r) for r in results]
    assert not keys[0] & keys[1]  # no metric repeated in another dataloader's column
    logged = keys[0] | keys[1]
    assert {"test/score", "test/seg/aupr_mean", "test/grade/qwk", "test/seg_loss"} <= logged
