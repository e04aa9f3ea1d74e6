"""Shared fixtures: paths to the real sample data, quiet and single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before torch/albumentations/wandb are imported by any test module.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Return a path under ``../shared/data`` or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not available at {path} (only on the project's machines)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The real sample data folder ``../shared/data`` (skips when absent)."""
    return shared_path()
