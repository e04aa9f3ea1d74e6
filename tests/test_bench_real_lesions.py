"""benchmarks/bench_real_lesions.py end to end on tiny synthetic sources named like the real."""

import json
import math
import shutil

import pytest
import yaml

from tests.cli_config import TINY_NETWORK
from tests.scripts import REPO, load_script


def tiny_config(synthetic_root, tmp_path):
    bench = load_script("benchmarks/bench_real_lesions.py")
    config = bench.load_configs([REPO / "configs" / "real_lesions.yaml"])
    flat = tmp_path / "flat"
    flat.mkdir()
    for split in ("train", "test"):
        for path in (synthetic_root / "tjdr" / split / "image").iterdir():
            shutil.copy(path, flat / f"{split}{path.name}")
    heimed, idrid = config["data"]["init_args"]["segmentation"]
    size = {"image_size": 64, "patch_size": 32, "batch_size": 2, "eval_batch_size": 2}
    heimed["init_args"] |= {"root": str(flat), "cache_dir": str(tmp_path / "c1")} | size
    heimed["init_args"]["test_fraction"] = 0.4  # every lesion-presence stratum in the test part
    heimed["init_args"]["label_map"] = None  # the phantoms' JSON uses the default label names
    idrid["init_args"] |= {"root": str(synthetic_root / "tjdr"), "cache_dir": str(tmp_path / "c2")}
    idrid["init_args"] |= size | {"patches_per_image": 1}
    network = config["model"].get("network", {})
    config["model"] = {**config["model"], "network": {**network, **TINY_NETWORK}}
    config["model"]["network"].pop("encoder_weights")
    config["trainer"] |= {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 2}
    config["media"] = None
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_seeds_reach_every_lesion_source_and_the_split_seed_stays(tmp_path):
    bench = load_script("benchmarks/bench_real_lesions.py")
    base = bench.load_configs([REPO / "configs" / "real_lesions.yaml"])
    config = bench.run_config(base, "scratch", 5, ["trainer.max_epochs=3"], tmp_path)
    assert config["seed_everything"] == 5 and config["model"]["network"]["encoder_weights"] is None
    sources = bench.lesion_sources(config)
    assert [s["init_args"]["seed"] for s in sources] == [5, 5]
    assert [s["init_args"]["split_seed"] for s in sources] == [0, 0]
    assert config["trainer"]["max_epochs"] == 3
    # The loaded config is left alone.
    assert base["model"]["network"]["encoder_weights"] == "imagenet"


def test_benchmark_fits_selects_and_tests_each_variant(synthetic_root, tmp_path, capsys):
    bench = load_script("benchmarks/bench_real_lesions.py")
    config = tiny_config(synthetic_root, tmp_path)
    out = tmp_path / "results.json"
    bench.main(
        ["--config", str(config), "--seeds", "0", "--work", str(tmp_path / "w"), "--json", str(out)]
    )
    results = json.loads(out.read_text())
    assert [r["variant"] for r in results] == ["pretrained", "scratch"]
    for result in results:
        assert 0 <= result["best_epoch"] <= 1 and len(result["val_curve"]) == 2
        assert 0.0 <= result["test"]["test/seg/heimed/aupr_EX"] <= 1.0
        for lesion in ("MA", "HE", "EX", "SE"):
            value = result["test"][f"test/seg/idrid/aupr_{lesion}"]
            assert math.isnan(value) or 0.0 <= value <= 1.0
    printed = capsys.readouterr().out
    assert "| pretrained, 1 seeds |" in printed and "HEI-MED EX AUPR" in printed


def test_seeds_reach_the_grading_source_joint_or_alone(tmp_path):
    bench = load_script("benchmarks/bench_real_lesions.py")
    configs = [REPO / "configs" / "real_lesions.yaml", REPO / "configs" / "joint_real.yaml"]
    base = bench.load_configs(configs)
    joint = bench.run_config(base, "pretrained", 3, [], tmp_path)
    grading = joint["data"]["init_args"]["grading"]
    assert grading["init_args"]["seed"] == 3
    assert [s["init_args"]["seed"] for s in bench.lesion_sources(joint)] == [3, 3]
    # Grading alone: the joint run's grading source as the whole data entry.
    entry = yaml.safe_dump(base["data"]["init_args"]["grading"], default_flow_style=True)
    alone = bench.run_config(base, "pretrained", 4, [f"data={entry.strip()}"], tmp_path)
    assert alone["data"]["class_path"].endswith("RetinaMNISTDataModule")
    assert alone["data"]["init_args"]["seed"] == 4 and bench.lesion_sources(alone) == []


def test_fits_chosen_on_validation_are_tested_once_alone_and_as_an_ensemble(
    synthetic_root, tmp_path, capsys, recwarn
):
    bench = load_script("benchmarks/bench_real_lesions.py")
    config = tiny_config(synthetic_root, tmp_path)
    work = tmp_path / "w"
    common = ["--config", str(config), "--variants", "scratch", "--seeds", "0", "1"]
    common += ["--work", str(work)]
    bench.main([*common, "--val-only"])
    assert not list(work.glob("*/test"))  # validation only: no test split opened
    fitted = {p: p.stat().st_mtime_ns for p in work.glob("*/fit/version_0/metrics.csv")}
    assert len(fitted) == 2
    out = tmp_path / "results.json"
    evaluation = ["--eval-set", "model.lesion_tta=flips"]
    bench.main([*common, "--reuse-fits", "--ensemble", *evaluation, "--json", str(out)])
    # Tested without fitting again.
    assert {p: p.stat().st_mtime_ns for p in fitted} == fitted
    results = json.loads(out.read_text())
    assert [r["variant"] for r in results] == ["scratch", "scratch", "ensemble of seeds 0+1"]
    single = [r["test"]["test/seg/heimed/aupr_EX"] for r in results]
    assert all(0.0 <= value <= 1.0 for value in single)
    assert "| ensemble of seeds 0+1 |" in capsys.readouterr().out
    # The config's EMA weights are what the test reads: no advice that their state is lost.
    assert not [w for w in recwarn if "WeightAveraging" in str(w.message)]
    # The test-only override reached the test, not the fit.
    for run in ("scratch-seed0", "scratch-seed1"):
        fit = yaml.safe_load((work / f"{run}.yaml").read_text())
        tested = yaml.safe_load((work / f"{run}-test.yaml").read_text())
        assert fit["model"].get("lesion_tta", "none") == "none"
        assert tested["model"]["lesion_tta"] == "flips"
        hparams = yaml.safe_load((work / run / "test" / "version_0" / "hparams.yaml").read_text())
        assert hparams["lesion_tta"] == "flips"
    # A run's test splits are read once: testing it again stops.
    with pytest.raises(SystemExit, match="read before"):
        bench.main([*common, "--reuse-fits"])
    # An evaluation set-up chosen later reads them once under its own name.
    later = ["--reuse-fits", "--eval-set", "model.lesion_tta=dihedral", "--test-name", "later"]
    capsys.readouterr()
    bench.main([*common, *later])
    assert "test 'later' model.lesion_tta=dihedral" in capsys.readouterr().out
    hparams = yaml.safe_load(
        (work / "scratch-seed0" / "later" / "version_0" / "hparams.yaml").read_text()
    )
    assert hparams["lesion_tta"] == "dihedral"
    assert (
        yaml.safe_load((work / "scratch-seed0-later.yaml").read_text())["model"]["lesion_tta"]
        == "dihedral"
    )
    with pytest.raises(SystemExit, match="read before"):
        bench.main([*common, *later])
    # A fit under other training settings is not reused.
    with pytest.raises(SystemExit, match="differs from this run's config"):
        bench.main([*common, "--reuse-fits", "--set", "model.lr=0.01"])


def test_a_fit_is_reused_across_evaluation_settings_but_not_training_ones(tmp_path):
    bench = load_script("benchmarks/bench_real_lesions.py")
    base = bench.load_configs([REPO / "configs" / "real_lesions.yaml"])
    fitted = bench.run_config(base, "pretrained", 0, [], tmp_path)
    later = bench.run_config(base, "pretrained", 0, ["model.lesion_tta=dihedral"], tmp_path)
    retrained = bench.run_config(base, "pretrained", 0, ["model.lr=0.01"], tmp_path)
    assert bench.fit_settings(fitted) == bench.fit_settings(later)
    assert bench.fit_settings(fitted) != bench.fit_settings(retrained)
    assert later["model"]["lesion_tta"] == "dihedral"  # the config itself is left whole


def test_an_appended_callback_lands_in_a_list_yaml_left_null_or_absent():
    bench = load_script("benchmarks/bench_real_lesions.py")
    callback = "{class_path: lightning.pytorch.callbacks.EMAWeightAveraging}"
    for trainer in ({"callbacks": None}, {}, {"callbacks": [{"class_path": "A"}]}):
        config = bench.apply_overrides({"trainer": trainer}, [f"trainer.callbacks+={callback}"])
        paths = [entry["class_path"] for entry in config["trainer"]["callbacks"]]
        assert paths[-1] == "lightning.pytorch.callbacks.EMAWeightAveraging"
        assert paths[:-1] == [entry["class_path"] for entry in trainer.get("callbacks") or []]


def test_a_number_in_a_dotted_key_indexes_a_list_of_lesion_sources():
    bench = load_script("benchmarks/bench_real_lesions.py")
    sources = [{"init_args": {"patch_size": 192}}, {"init_args": {"patch_size": 192}}]
    config = {"data": {"init_args": {"segmentation": sources}}}
    key = "data.init_args.segmentation.1.init_args.patch_size"
    changed = bench.apply_overrides(config, [f"{key}=288"])
    patches = [s["init_args"]["patch_size"] for s in changed["data"]["init_args"]["segmentation"]]
    assert patches == [192, 288]
    with pytest.raises(SystemExit, match="'2' is not an index of a 2-item list"):
        bench.apply_overrides(config, ["data.init_args.segmentation.2.init_args.patch_size=1"])


def test_a_fit_with_a_callback_appended_is_reused_once_the_config_spells_it_out(tmp_path):
    bench = load_script("benchmarks/bench_real_lesions.py")
    base = bench.load_configs([REPO / "configs" / "real_lesions.yaml"])
    ema = "lightning.pytorch.callbacks.EMAWeightAveraging"
    # The fit of an earlier config: EMA appended on the command line, its defaults left out.
    earlier = {**base, "trainer": dict(base["trainer"])}
    earlier["trainer"]["callbacks"] = [
        c for c in base["trainer"]["callbacks"] if c["class_path"] != ema
    ]
    appended = "{class_path: %s, init_args: {decay: %s, update_starting_at_epoch: 1}}"
    saved = tmp_path / "pretrained-seed0.yaml"
    fitted = bench.run_config(
        earlier, "pretrained", 0, [f"trainer.callbacks+={appended % (ema, 0.99)}"], tmp_path
    )
    saved.write_text(yaml.safe_dump(fitted))
    # The config now holds the same callback, every default spelt out.
    now = bench.run_config(base, "pretrained", 0, [], tmp_path)
    assert bench.fit_settings(yaml.safe_load(saved.read_text())) != bench.fit_settings(now)
    assert bench.trains_the_same(saved, now)
    other = bench.run_config(
        earlier, "pretrained", 0, [f"trainer.callbacks+={appended % (ema, 0.9)}"], tmp_path
    )
    assert not bench.trains_the_same(saved, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pretrained-seed0.yaml"]
