"""benchmarks/real_lesion_errors.py: its error tables on hand-made maps and on a tiny real fit."""

import json
import re

import numpy as np
import pytest
import yaml

from tests.scripts import load_script
from tests.test_bench_real_lesions import tiny_config


def lesion_with_a_halo() -> tuple[np.ndarray, np.ndarray]:
    """One 4x4 exudate scored 0.8, a one-pixel ring around it scored 0.9, the rest 0.1."""
    masks = np.zeros((1, 16, 16), np.uint8)
    masks[0, 6:10, 6:10] = 1
    probs = np.full((1, 16, 16), 0.1, np.float32)
    probs[0, 5:11, 5:11] = 0.9
    probs[0, 6:10, 6:10] = 0.8
    return probs, masks


def test_negatives_next_to_a_lesion_left_unscored_lift_aupr_to_one():
    errors = load_script("benchmarks/real_lesion_errors.py")
    probs, masks = lesion_with_a_halo()
    scored = errors.aupr(probs, masks)
    assert scored < 0.9
    ring = errors.near(masks, 1, 1) & (masks == 0)
    assert ring.sum() == 36 - 16
    assert errors.aupr(probs, masks, ring) > 0.999


def test_confident_false_positives_are_placed(capsys):
    errors = load_script("benchmarks/real_lesion_errors.py")
    probs, masks = lesion_with_a_halo()
    # A second photograph without exudate, with four confident pixels in the middle.
    healthy = np.full((1, 16, 16), 0.1, np.float32)
    healthy[0, 7:9, 7:9] = 0.95
    probs = np.concatenate([probs, healthy])
    masks = np.concatenate([masks, np.zeros_like(masks)])
    fovs = np.ones(masks.shape, bool)
    errors.print_aupr_tables(probs, masks, ["lesion", "healthy"], "EX")
    errors.print_false_positives(probs, masks, fovs, "EX")
    printed = capsys.readouterr().out
    # 20 halo pixels beside the lesion, 4 in the healthy photograph.
    assert "24 pixels against 16 EX pixels" in printed
    assert "| photographs without EX | 17% |" in printed
    assert "| within 3 px of a labelled EX | 83% |" in printed
    assert "| lesion | 16 |" in printed and "| healthy |" not in printed


def test_pooled_aupr_is_the_fits_own_validation_score(
    synthetic_root, tmp_path, capsys, monkeypatch
):
    bench = load_script("benchmarks/bench_real_lesions.py")
    errors = load_script("benchmarks/real_lesion_errors.py")
    config_path = tiny_config(synthetic_root, tmp_path)
    config = yaml.safe_load(config_path.read_text())
    config["trainer"]["limit_val_batches"] = None  # the whole validation split, as the script
    config_path.write_text(yaml.safe_dump(config))
    work, out = tmp_path / "w", tmp_path / "results.json"
    monkeypatch.chdir(tmp_path)  # the script moves to the repository root; come back after
    common = ["--config", str(config_path), "--variants", "scratch", "--seeds", "0"]
    bench.main([*common, "--val-only", "--work", str(work), "--json", str(out)])
    (result,) = json.loads(out.read_text())
    best = result["val_monitor"]
    capsys.readouterr()
    run = work / "scratch-seed0"
    ckpt = str(run / "ckpt" / "best.ckpt")
    errors.main(["--config", f"{run}.yaml", "--ckpt", ckpt, "--read-sizes", "96"])
    printed = capsys.readouterr().out
    pooled = float(re.search(r"pooled EX AUPR over \d+ photographs: ([0-9.]+)", printed)[1])
    assert best > 0 and abs(pooled - best) < 2e-3  # the printed value has 3 decimals
    # Read at the working size (64, listed first) the map is the one scored above.
    sizes = re.findall(r"\| (\d+)² \| ([0-9.]+) \|", printed)
    assert [size for size, _ in sizes] == ["64", "96"] and float(sizes[0][1]) == round(pooled, 3)
    assert re.search(r"\| mean of 64² and 96² \| [0-9.]+ \|", printed)
    assert "field of view: " in printed and "| where | share |" in printed
    assert not list(work.glob("*/test"))  # validation only


class ImageAsLesions:
    """A stand-in model whose lesion maps are the image's own brightness."""

    def evaluation_forward(self, image, reads=()):
        return {"lesion_probs": image.mean(dim=1, keepdim=True).sigmoid().expand(-1, 4, -1, -1)}


def test_maps_read_at_another_size_land_on_the_working_grid(synthetic_root, tmp_path):
    errors = load_script("benchmarks/real_lesion_errors.py")
    config = yaml.safe_load(tiny_config(synthetic_root, tmp_path).read_text())
    model = ImageAsLesions()
    working = errors.source_datamodule(config, "heimed", {})
    at_working = errors.predict(model, working, 2)[0]
    (at_double,) = errors.maps_read_at(model, config, "heimed", {}, [128], 2, (64, 64)).values()
    assert at_double.shape == at_working.shape
    # The same photographs, cropped alike: read at 128² and averaged down they match 64²,
    # and a map one pixel off would not.
    assert np.corrcoef(at_double.ravel(), at_working.ravel())[0, 1] > 0.98
    shifted = np.roll(at_double, 3, axis=-1)
    assert np.abs(at_double - at_working).mean() < np.abs(shifted - at_working).mean() / 2


def test_a_read_size_the_encoder_cannot_take_stops_with_one_line(capsys):
    errors = load_script("benchmarks/real_lesion_errors.py")
    args = ["--config", "c.yaml", "--ckpt", "c.ckpt", "--read-sizes", "1024", "1000"]
    with pytest.raises(SystemExit):
        errors.main(args)
    assert "--read-sizes must be multiples of 32, got [1024, 1000]" in capsys.readouterr().err
