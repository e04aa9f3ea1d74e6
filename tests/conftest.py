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


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic TJDR + RetinaMNIST, written once per session by the seeded generator."""
    from multitask_dr.datasets.synthetic.writers import write_retinamnist, write_tjdr

    root = tmp_path_factory.mktemp("synthetic")
    write_tjdr(root / "tjdr", n_train=10, n_test=4, size=96, seed=0)
    write_retinamnist(root / "retinamnist", sizes=(28, 64), n_train=40, n_val=20, n_test=20, seed=0)
    return root


# The session's one W&B-logged fit, shared by the media, predict and CLI tests.
from tests.fitted_run import fitted, wandb_env  # noqa: E402,F401
