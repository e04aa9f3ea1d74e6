"""Shared by the task tests: the tiny model, small batches, quiet warnings without a Trainer."""

import warnings

import lightning
import pytest
import torch

from multitask_dr.lesions import IGNORE_INDEX
from tests.cli_config import TINY_NETWORK as TINY

__all__ = ["TINY", "grade_batch", "save", "seg_batch"]


def save(model, path) -> str:
    """A checkpoint as Lightning writes one (weights + hyper-parameters)."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return str(path)


def seg_batch(n=2, size=64, grades=None):
    mask = torch.zeros(n, 4, size, size, dtype=torch.uint8)
    mask[:, 1, 10:20, 10:20] = 1
    mask[:, :, :2] = IGNORE_INDEX
    grade = torch.full((n,), -1) if grades is None else torch.tensor(grades)
    return {"image": torch.randn(n, 3, size, size), "mask": mask, "grade": grade}


def grade_batch(n=4, size=32):
    return {"image": torch.randn(n, 3, size, size), "grade": torch.arange(n) % 5}


@pytest.fixture(autouse=True)
def _quiet():
    # The tests call training/evaluation steps directly, outside a Trainer.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.trainer.*")
        warnings.filterwarnings("ignore", message=".*self.log.*")
        yield
