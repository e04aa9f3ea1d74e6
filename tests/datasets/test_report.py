import json
import shutil

import pytest

from multitask_dr.cli import main
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.report import check_retinamnist, check_tjdr
from tests.conftest import shared_path


def test_report_counts_and_finds_cross_split_duplicates(synthetic_root, tmp_path):
    root = tmp_path / "tjdr"
    shutil.copytree(synthetic_root / "tjdr", root, ignore=shutil.ignore_patterns(".cache"))
    # Plant the TJDR release's defect: one image present in train and test with different masks.
    for kind in ("image", "annotation"):
        shutil.copy(root / "train" / kind / "003.png", root / "test" / kind / "099.png")
    (root / "train" / "image" / "002.json").write_text("{broken")
    report = check_tjdr(root, annotation="png")
    train = report.splits["train"]
    assert train.images == 10 and report.splits["test"].images == 5
    assert train.sizes == {"96x96": 10}
    assert sum(train.grades.values()) == 10
    assert train.lesion_free == train.grades.get("0", 0)  # grade 0 <=> no lesions (the rule)
    assert report.cross_split_duplicates == [["test/099", "train/003"]]
    assert report.problems == []
    # Reading the Labelme form instead reports the broken JSON and keeps the rest.
    labelme = check_tjdr(root, annotation="labelme")
    assert any("002.json" in p for p in labelme.problems)
    assert labelme.splits["train"].images == 9  # counts only the images that can be used


def test_check_data_cli_text_json_and_exit_status(synthetic_root, capsys):
    assert main(["check-data", str(synthetic_root / "tjdr"), "--annotation", "png"]) == 0
    text = capsys.readouterr().out
    assert "[train] 10 images" in text and "duplicate image groups" in text
    assert (
        main(
            ["check-data", str(synthetic_root / "retinamnist"), "--format", "retinamnist", "--json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["splits"]["val"]["images"] == 20


def test_missing_layout_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no train/ or test/"):
        check_tjdr(tmp_path)


def test_real_samples():
    report = check_tjdr(shared_path("tjdr_sample"))
    assert report.splits["train"].images == 4 and report.splits["test"].images == 2
    assert report.splits["train"].sizes == {"852x852": 4}
    assert report.duplicates == []
    rm = check_retinamnist(shared_path("retinamnist"))
    assert rm.splits["test"].images == 400
    assert sum(rm.splits["train"].grades.values()) == 1080
