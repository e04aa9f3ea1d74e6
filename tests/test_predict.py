"""``predict`` on a folder of photographs, from the session's ``fitted`` checkpoint."""

import csv
import json
import shutil

import numpy as np
import torch
from PIL import Image

from multitask_dr.lesions import LESIONS, RELEASE_INDEX, RELEASE_PALETTE
from multitask_dr.predict import logit_contributions, release_index_mask
from tests.fitted_run import run_cli


def test_predict_writes_masks_overlays_reports_and_summary(fitted, synthetic_root, tmp_path):
    config, out = fitted
    folder = tmp_path / "photos"
    folder.mkdir()
    test_images = sorted((synthetic_root / "tjdr" / "test" / "image").glob("*.png"))
    shutil.copy(test_images[0], folder / "a.png")
    rgb = Image.open(test_images[1]).convert("RGB")
    rgb.resize((150, 120)).save(folder / "wide.jpg", quality=95)  # other size, JPEG
    rgb.convert("L").save(folder / "grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    results = tmp_path / "results"
    # The data roots do not exist: the normalisation comes from the checkpoint.
    args = [
        "predict",
        "--config",
        str(config),
        "--ckpt_path",
        str(out / "ckpt" / "best.ckpt"),
        "--data.init_args.segmentation.init_args.root",
        str(tmp_path / "absent"),
        "--data.init_args.grading.init_args.root",
        str(tmp_path / "absent"),
        "--data.predict_dir",
        str(folder),
        "--prediction.output_dir",
        str(results),
        "--trainer.logger",
        "false",
    ]
    assert run_cli(args) == 0

    with (results / "summary.csv").open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"a", "wide", "grey", "broken"}
    assert "broken.png" in rows["broken"]["error"]
    for name in ("a", "wide", "grey"):
        assert rows[name]["error"] == ""
        source = next(folder.glob(f"{name}.*"))
        width, height = Image.open(source).size
        mask = Image.open(results / f"{name}_lesions.png")
        assert mask.mode == "P" and mask.size == (width, height)
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2, 3, 4}
        assert mask.getpalette()[:15] == [v for colour in RELEASE_PALETTE for v in colour]
        assert Image.open(results / f"{name}_overlay.png").size == (width, height)
        report = json.loads((results / f"{name}.json").read_text())
        assert report["grade"] == int(rows[name]["grade"]) in range(5)
        assert abs(sum(report["grade_probabilities"]) - 1) < 1e-4
        index = np.asarray(mask)
        for lesion in LESIONS:
            entry = report["lesions"][lesion]
            # Areas count each lesion on its own; the mask shows one lesion of overlaps.
            assert entry["area_px"] >= int((index == RELEASE_INDEX[lesion]).sum())
            assert entry["logit_contribution"] is not None
            assert entry["grade_effect"] is not None  # ablation through multitask_dr.attribution


def test_release_mask_applies_the_release_priority_where_lesions_overlap():
    # The same rule as every one-index file: EX before HE however probable each is.
    probs = np.zeros((4, 1, 4), dtype=np.float32)
    probs[LESIONS.index("HE"), 0] = [0.9, 0.6, 0.2, 0.7]
    probs[LESIONS.index("EX"), 0] = [0.7, 0.8, 0.3, 0.1]
    index = release_index_mask(probs, 0.5)
    assert index[0].tolist() == [RELEASE_INDEX["EX"], RELEASE_INDEX["EX"], 0, RELEASE_INDEX["HE"]]


def test_logit_contributions_softmax_centred_and_coral():
    contributions = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]]])  # (B=1, L=2, G=3)
    probs = torch.tensor([[0.1, 0.2, 0.7]])
    assert logit_contributions(contributions, probs).tolist() == [[1.0, 2.0]]
    coral = torch.tensor([[[0.5], [-1.0]]])
    assert logit_contributions(coral, probs).tolist() == [[0.5, -1.0]]


def test_an_untrained_grade_head_reports_no_grade(fitted, synthetic_root, tmp_path):
    config, out = fitted
    checkpoint = torch.load(out / "ckpt" / "best.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["state_dict"]["trained_steps"].tolist()[1] > 0  # the joint fit graded
    # The same weights as if its fit had held lesion sources only.
    checkpoint["state_dict"]["trained_steps"][1] = 0
    lesions_only = tmp_path / "lesions_only.ckpt"
    torch.save(checkpoint, lesions_only)
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(next((synthetic_root / "tjdr" / "test" / "image").glob("*.png")), folder / "a.png")
    results = tmp_path / "results"
    args = ["predict", "--config", str(config), "--ckpt_path", str(lesions_only)]
    args += ["--data.predict_dir", str(folder), "--prediction.output_dir", str(results)]
    assert run_cli([*args, "--trainer.logger", "false"]) == 0
    report = json.loads((results / "a.json").read_text())
    assert report["grade"] is None and report["grade_probabilities"] is None
    assert all(report["lesions"][lesion]["grade_effect"] is None for lesion in LESIONS)
    assert report["lesions"]["EX"]["area_px"] >= 0  # lesions are still reported
    with (results / "summary.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["grade"] == "" and row["p0"] == "" and row["error"] == ""


def test_predict_averages_a_further_read_into_the_lesion_maps_only(
    fitted, synthetic_root, tmp_path, capsys
):
    config, out = fitted
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(next((synthetic_root / "tjdr" / "test" / "image").glob("*.png")), folder / "a.png")
    base = ["predict", "--config", str(config), "--ckpt_path", str(out / "ckpt" / "best.ckpt")]
    base += ["--data.predict_dir", str(folder), "--trainer.logger", "false"]
    reports = {}
    for name, extra in (("one", []), ("two", ["[128]"])):
        results = tmp_path / name
        args = [*base, "--prediction.output_dir", str(results)]
        if extra:
            args += ["--data.init_args.segmentation.init_args.eval_read_sizes", *extra]
        assert run_cli(args) == 0
        reports[name] = json.loads((results / "a.json").read_text())
    one, two = reports["one"], reports["two"]
    # The grade is the working read's; the lesion maps average in the 128² read.
    assert one["grade_probabilities"] == two["grade_probabilities"]
    peaks = [
        (one["lesions"][k]["max_probability"], two["lesions"][k]["max_probability"])
        for k in LESIONS
    ]
    assert any(abs(a - b) > 1e-4 for a, b in peaks), peaks
    bad = [*base, "--prediction.output_dir", str(tmp_path / "bad")]
    bad += ["--data.init_args.segmentation.init_args.eval_read_sizes", "[64]"]
    capsys.readouterr()
    assert run_cli(bad) != 0  # the working size itself: a one-line configuration error
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "eval_read_sizes holds 64, the working size" in line
