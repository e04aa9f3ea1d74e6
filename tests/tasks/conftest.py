"""Shared by the task tests: the tiny model and quiet warnings of a task used without a Trainer."""

import warnings

import pytest

from tests.cli_config import TINY_NETWORK as TINY

__all__ = ["TINY"]


@pytest.fixture(autouse=True)
def _quiet():
    # The tests call training/evaluation steps directly, outside a Trainer.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.trainer.*")
        warnings.filterwarnings("ignore", message=".*self.log.*")
        yield
