"""Every planted fault (tests/faults.py): lenient skips and names it, strict stops on it.

Each case is a real file in the real format with one fault. Lenient readers must keep every
other image and list the fault once, under its file; strict readers must stop on it with one
line naming the file; ``check-data`` must count only usable images and exit 1 (lenient) or 2
with that one line (``--strict``).
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from multitask_dr.cli import main
from multitask_dr.datamodules import RetinaMNISTDataModule, TJDRDataModule
from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.retinamnist import RetinaMNISTDataset
from multitask_dr.datasets.tjdr import TJDRDataset
from tests.faults import (
    IMAGES,
    NPZ_FAULTS,
    TJDR_FAULTS,
    VICTIM,
    Fault,
    embed_image,
    plant,
    retinamnist_file,
    sixteen_bit,
    tjdr_dataset,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 8-image dataset, written once and copied for each fault."""
    return tjdr_dataset(tmp_path_factory.mktemp("pristine") / "tjdr")


def datamodule(root: Path, fault: Fault, **kwargs: object) -> TJDRDataModule:
    return TJDRDataModule(
        root=str(root),
        image_size=32,
        batch_size=2,
        annotation=fault.annotation,  # type: ignore[arg-type]
        cache_dir=str(root.parent / "cache"),
        **kwargs,  # type: ignore[arg-type]
    )


def one_line_naming(path: Path, reason: str) -> str:
    """Pattern of a message that starts with the file and goes on with the reason."""
    return rf"{re.escape(str(path))}: {reason}"


@pytest.mark.parametrize("fault", TJDR_FAULTS, ids=lambda f: f.name)
def test_lenient_setup_skips_the_bad_file_and_keeps_the_rest(fault, pristine, tmp_path):
    bad = plant(tmp_path / "tjdr", fault, pristine)
    dm = datamodule(tmp_path / "tjdr", fault)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == fault.kept
    problems = dm.datasets["train"].problems.problems
    assert len(problems) == fault.problems, [str(p) for p in problems]
    assert re.match(one_line_naming(bad, fault.reason), str(problems[0])), str(problems[0])
    for problem in problems:  # the path in front, not again in the reason
        assert str(problem.path) not in problem.reason, str(problem)
    # The end-of-setup summary lists it too (the user sees it without a log configured).
    assert any(str(bad) in str(w.message) for w in caught)


@pytest.mark.parametrize("fault", TJDR_FAULTS, ids=lambda f: f.name)
def test_strict_setup_stops_at_the_bad_file_with_one_line(fault, pristine, tmp_path):
    bad = plant(tmp_path / "tjdr", fault, pristine)
    with pytest.raises(DataError) as info:
        datamodule(tmp_path / "tjdr", fault, strict=True).setup("fit")
    message = str(info.value)
    assert "\n" not in message
    assert re.match(one_line_naming(bad, fault.reason), message), message


@pytest.mark.parametrize("fault", TJDR_FAULTS, ids=lambda f: f.name)
def test_check_data_counts_usable_images_and_exits_by_mode(fault, pristine, tmp_path, capsys):
    root = tmp_path / "tjdr"
    bad = plant(root, fault, pristine)
    args = ["check-data", str(root), "--annotation", fault.annotation]
    assert main([*args, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"]["images"] == fault.kept
    assert len(report["problems"]) == fault.problems
    assert re.match(one_line_naming(bad, fault.reason), report["problems"][0])

    assert main([*args, "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert re.match("multitask-dr: error: " + one_line_naming(bad, fault.reason), captured.err)


def test_lenient_fit_keeps_seven_of_eight_and_strict_fit_exits_two(
    pristine, synthetic_root, tmp_path, capsys, caplog
):
    import yaml

    from tests.cli_config import tiny_joint_config

    bad = plant(tmp_path / "tjdr", TJDR_FAULTS[0], pristine)  # a zero-byte image
    config = tiny_joint_config(
        synthetic_root,
        tmp_path / "out",
        loggers=[],
        segmentation={"root": str(tmp_path / "tjdr"), "image_size": 32},
    )
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    caplog.set_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--config", str(path)]) == 0
        capsys.readouterr()
        # The source is named after its root folder.
        split = re.search(r"tjdr split: (\d+) train / (\d+) val", caplog.text)
        assert split and int(split[1]) + int(split[2]) == IMAGES - 1
        strict = ["--data.init_args.segmentation.init_args.strict", "true"]
        assert main(["fit", "--config", str(path), *strict]) == 2
    err = capsys.readouterr().err
    assert err == f"multitask-dr: error: {bad}: cannot read image: empty file (0 bytes)\n"


def test_sixteen_bit_grey_image_is_scaled_not_clipped_in_strict_mode(pristine, tmp_path):
    root = tmp_path / "tjdr"
    plant(root, Fault("none", lambda split: split, ""), pristine)
    expected = sixteen_bit(root / "train" / "image" / f"{VICTIM}.png")
    dataset = TJDRDataset(root, "train", annotation="png", crop_fov=False, strict=True)
    dataset.verify()
    assert len(dataset) == IMAGES
    image = dataset[[r.name for r in dataset.records].index(VICTIM)]["image"]
    assert image.dtype == np.uint8
    assert np.array_equal(image, np.repeat(expected[..., None], 3, axis=2))
    assert (image == 255).mean() < 0.01  # convert("RGB") made ~all of it white


def test_labelme_file_with_its_image_embedded_and_none_beside_it_is_used(pristine, tmp_path):
    root = tmp_path / "tjdr"
    plant(root, Fault("none", lambda split: split, ""), pristine)
    original = TJDRDataset(root, "train", annotation="labelme", crop_fov=False)
    before = original[2]
    labelme = embed_image(root / "train", VICTIM)
    dataset = TJDRDataset(root, "train", annotation="labelme", crop_fov=False, strict=True)
    dataset.verify()
    assert len(dataset) == IMAGES and len(dataset.problems) == 0
    record = dataset.records[2]
    assert record.name == VICTIM and record.image == record.annotation == labelme
    after = dataset[2]
    assert np.array_equal(after["image"], before["image"])
    assert np.array_equal(after["mask"], before["mask"])


def test_empty_dataset_is_a_problem_not_a_clean_report(tmp_path, capsys):
    (tmp_path / "tjdr" / "train" / "image").mkdir(parents=True)
    assert main(["check-data", str(tmp_path / "tjdr")]) == 1
    out = capsys.readouterr().out
    assert "[train] 0 images" in out
    assert f"{tmp_path / 'tjdr' / 'train'}: no usable images" in out
    assert main(["check-data", str(tmp_path / "tjdr"), "--strict"]) == 2
    assert capsys.readouterr().err.startswith("multitask-dr: error: ")


def test_missing_root_is_one_line_in_both_modes(tmp_path, capsys):
    for extra in ([], ["--strict"]):
        assert main(["check-data", str(tmp_path / "absent"), *extra]) == 2
        err = capsys.readouterr().err
        assert err == f"multitask-dr: error: {tmp_path / 'absent'}: does not exist\n"


# ------------------------------------------------------------------------------ RetinaMNIST
@pytest.mark.parametrize("name,fault,reason,kept", NPZ_FAULTS, ids=[f[0] for f in NPZ_FAULTS])
def test_retinamnist_faults(name, fault, reason, kept, tmp_path, capsys):
    path = retinamnist_file(tmp_path)
    fault(path)
    pattern = one_line_naming(path, reason)
    if kept is None:  # nothing in the file can be used, in either mode
        with pytest.raises(DataError, match=pattern):
            RetinaMNISTDataset(tmp_path, "train")
    else:
        dataset = RetinaMNISTDataset(tmp_path, "train")
        assert len(dataset) == kept
        (problem,) = [str(p) for p in dataset.problems.problems]
        assert re.fullmatch(pattern + r" \(skipped row\)", problem), problem
        assert 2.5 not in dataset.grades and 7 not in dataset.grades
        with pytest.raises(DataError, match=pattern):
            RetinaMNISTDataset(tmp_path, "train", strict=True)
        dm = RetinaMNISTDataModule(root=str(tmp_path), size=28, image_size=28, strict=True)
        with pytest.raises(DataError, match=pattern):
            dm.setup("fit")
    args = ["check-data", str(tmp_path), "--format", "retinamnist"]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match("multitask-dr: error: " + pattern, err)
    if kept is not None:
        assert main([*args, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["splits"]["train"]["images"] == kept
        assert re.match(pattern, report["problems"][0])
