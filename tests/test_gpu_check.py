"""scripts/gpu_check.py: its plan matches the GPU configs, and its CPU mode runs green."""

import sys
import warnings
from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main as cli_main
from tests.scripts import REPO, load_script


@pytest.fixture(scope="module")
def check():
    return load_script("scripts/gpu_check.py")


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_plan_runs_every_gpu_config_at_its_own_resolution(check, tmp_path):
    plan = check.build_plan(tmp_path)
    steps = {step.name: step for step in plan.steps}
    configs = sorted((REPO / "configs" / "gpu").glob("*.yaml"))
    used = {
        Path(a) for s in plan.steps for i, a in enumerate(s.argv) if s.argv[i - 1] == "--config"
    }
    assert used == {check.EXPERIMENT, *configs}  # a new GPU config must be added to the check
    single = yaml.safe_load(check.EXPERIMENT.read_text())["data"]["init_args"]
    synth = steps["synthetic data"].argv
    # Full resolution: the synthetic photographs at the config's working size.
    assert option(synth, "--size") == str(single["segmentation"]["init_args"]["image_size"])
    assert option(synth, "--retina-sizes") == str(single["grading"]["init_args"]["size"])
    data = tmp_path / "data"
    for step in plan.steps:
        argv = step.argv
        assert "--trainer.accelerator" not in argv  # GPU mode keeps the configs' GPU settings
        if "--config" in argv and step.name != "throughput":
            assert option(argv, f"{check.SEG}.root") == str(data / "tjdr")
            assert option(argv, f"{check.GRADE}.root") == str(data / "retinamnist")
            assert option(argv, "--model.network.encoder_weights") == "null"  # no download needed
    # test and predict read the checkpoint the config's ModelCheckpoint writes.
    ckpt = option(steps["test tjdr_retinamnist.yaml (sliding windows)"].argv, "--ckpt_path")
    callback = yaml.safe_load(check.EXPERIMENT.read_text())["checkpoint"]
    assert ckpt == str(tmp_path / callback["dirpath"] / "best.ckpt")
    assert option(steps["predict tjdr_retinamnist.yaml"].argv, "--ckpt_path") == ckpt
    assert option(steps["throughput"].argv, "--device") == "cuda"
    imagenet = check.build_plan(tmp_path, imagenet=True)
    assert all("--model.network.encoder_weights" not in s.argv for s in imagenet.steps)


def test_a_failing_step_fails_the_check_and_points_at_its_log(check, tmp_path):
    ok = check.Step("ok", [sys.executable, "-c", "print('hi')"])
    exits = check.Step("exits", [sys.executable, "-c", "import sys; sys.exit(3)"])
    missing = check.Step("no file", ok.argv, check.expect_file(tmp_path / "nothing.txt"))
    skipped = check.Step("skipped", ok.argv, skip="needs 2 nodes")
    outcomes = [
        check.run_step(step, tmp_path, tmp_path / "logs" / f"{i}.log", timeout=60)
        for i, step in enumerate((ok, exits, missing, skipped))
    ]
    assert [o.status for o in outcomes] == ["PASS", "FAIL", "FAIL", "SKIP"]
    assert outcomes[1].message == "exit status 3" and "was not written" in outcomes[2].message
    assert "hi" in (tmp_path / "logs" / "0.log").read_text()
    text = check.summary(outcomes, tmp_path / "no_table.md")
    assert "| exits | FAIL |" in text and "gpu_check: FAILED (2 step(s) failed)" in text
    assert "gpu_check: passed" in check.summary(outcomes[:1], tmp_path / "no_table.md")


def run_in_process(check, step, work):
    """Run a planned command in this process (imports paid once): CLI, benchmark, or env."""
    argv = step.argv
    if argv[1:3] == ["-m", "multitask_dr"]:
        if str(check.DDP) in argv:
            # DDP initialises a process group; in-process only parse it (tests/test_ddp.py
            # runs DDP for real in subprocesses).
            with pytest.raises(SystemExit) as exit_info:
                cli_main([*argv[3:], "--print_config"])
            return exit_info.value.code
        if "--print_config" in argv:
            with pytest.raises(SystemExit) as exit_info:
                cli_main(argv[3:])
            return exit_info.value.code
        return cli_main(argv[3:])
    if argv[1].endswith("bench_throughput.py"):
        return load_script("benchmarks/bench_throughput.py").main(argv[2:])
    assert argv[2] == "--environment"
    return check.environment(argv[3])


def test_cpu_mode_runs_every_step_green(check, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the configs' relative checkpoint and log folders land here
    monkeypatch.setenv("WANDB_MODE", "offline")
    plan = check.build_plan(work, cpu=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in plan.steps:
            assert run_in_process(check, step, work) == 0, step.name
            if step.check is not None and "ddp" not in step.name:
                assert step.check(work) is None, step.name
    table = (work / "throughput.md").read_text()
    assert "| train |" in table and "| eval (metrics) |" in table
    assert (work / "predictions" / "summary.csv").read_text().count("\n") == 3  # header + 2
    assert "tjdr_retinamnist_1024" in str(check.checkpoint_path(check.SINGLE, work))
