import numpy as np
import pytest

from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.retinamnist import RetinaMNISTDataset, npz_path
from tests.conftest import shared_path


def write_npz(path, n=(6, 3, 4), size=28, drop=None, dtype=np.uint8):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 255, (count, size, size, 3)).astype(dtype)
        arrays[f"{split}_labels"] = rng.integers(0, 5, (count, 1)).astype(np.uint8)
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)


def test_real_file_official_splits():
    root = shared_path("retinamnist")
    sizes = {s: len(RetinaMNISTDataset(root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1080, "val": 120, "test": 400}
    sample = RetinaMNISTDataset(root, "test")[0]
    assert sample["image"].shape == (28, 28, 3) and sample["image"].dtype == np.uint8
    assert 0 <= sample["grade"] <= 4
    grades = RetinaMNISTDataset(root, "train").grades
    assert set(np.unique(grades)) == {0, 1, 2, 3, 4}


def test_small_file_is_not_blocked_by_medmnists_length_check(tmp_path):
    write_npz(tmp_path / "retinamnist_64.npz", size=64)
    dataset = RetinaMNISTDataset(tmp_path, "val", size=64)
    assert len(dataset) == 3
    assert dataset[2]["image"].shape == (64, 64, 3)


def test_missing_file_names_the_expected_path(tmp_path):
    with pytest.raises(DataError, match="retinamnist_128.npz"):
        RetinaMNISTDataset(tmp_path, "train", size=128)


def test_npz_without_expected_keys_is_named(tmp_path):
    write_npz(tmp_path / "retinamnist.npz", drop="val_labels")
    with pytest.raises(DataError, match=r"retinamnist\.npz.*val_labels"):
        RetinaMNISTDataset(tmp_path, "train")


def test_wrong_dtype_and_broken_file(tmp_path):
    write_npz(tmp_path / "retinamnist.npz", dtype=np.float32)
    with pytest.raises(DataError, match="float32"):
        RetinaMNISTDataset(tmp_path, "train")
    (tmp_path / "retinamnist.npz").write_bytes(b"not a zip")
    with pytest.raises(
        DataError, match=r"retinamnist\.npz: not an npz file .* starts with b.not a zip"
    ):
        RetinaMNISTDataset(tmp_path, "train")


def test_unknown_size_is_rejected():
    with pytest.raises(ValueError, match="28, 64, 128, 224"):
        npz_path(".", 32)


def test_reading_leaves_the_environment_as_it_was(monkeypatch, tmp_path):
    import os

    from multitask_dr.datasets.retinamnist import import_medmnist_retina

    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    assert import_medmnist_retina(tmp_path).__name__ == "RetinaMNIST"
    assert "MEDMNIST_ROOT" not in os.environ
    monkeypatch.setenv("MEDMNIST_ROOT", "/somewhere/else")
    import_medmnist_retina(tmp_path)
    assert os.environ["MEDMNIST_ROOT"] == "/somewhere/else"


def test_importing_albumentations_leaves_no_environment_behind():
    import subprocess
    import sys

    code = (
        "import os; os.environ.pop('NO_ALBUMENTATIONS_UPDATE', None); "
        "import multitask_dr.datamodules; "
        "import albumentations; "
        "assert 'NO_ALBUMENTATIONS_UPDATE' not in os.environ; "
        "assert 'MEDMNIST_ROOT' not in os.environ"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-500:]
    # ...and the update check was skipped: it warns when it cannot reach the network.
    assert "albumentations" not in done.stderr.lower()
