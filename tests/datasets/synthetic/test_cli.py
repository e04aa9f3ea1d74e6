import numpy as np
import pytest

from multitask_dr.datasets.synthetic.cli import main


def test_cli_writes_both_datasets(tmp_path, capsys):
    out = tmp_path / "synthetic"
    args = ["--out", str(out), "--seed", "2", "--n-train", "2", "--n-test", "1", "--size", "64"]
    args += [
        "--retina-sizes",
        "28",
        "64",
        "--retina-n-train",
        "3",
        "--retina-n-val",
        "1",
        "--retina-n-test",
        "2",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "tjdr" / "train" / "image").iterdir()) == [
        "001.json",
        "001.png",
        "002.json",
        "002.png",
    ]
    assert (out / "tjdr" / "test" / "annotation" / "001.png").is_file()
    with np.load(out / "retinamnist" / "retinamnist_64.npz") as data:
        assert data["train_images"].shape == (3, 64, 64, 3) and data["test_labels"].shape == (2, 1)
    assert (out / "retinamnist" / "retinamnist.npz").is_file()
    assert "retinamnist_64.npz" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--retina-sizes", "30"])
