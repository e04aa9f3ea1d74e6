"""The throughput benchmark (``benchmarks/bench_throughput.py``, ``benchmarks/throughput/``).

Its machinery (timing windows, the table) and a tiny real run of the command.
"""

import argparse
import itertools
import warnings

import pytest
import torch
import yaml

from benchmarks.throughput import timing
from benchmarks.throughput.phases import TrainResult, median_result
from benchmarks.throughput.plain import precision_context
from benchmarks.throughput.report import COLUMNS, Row, markdown_table
from benchmarks.throughput.timer import StepTimer
from benchmarks.throughput.timing import Measure, Stopwatch, time_loader
from tests.cli_config import tiny_joint_config, wandb_logger
from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_throughput.py")


def fake_clock(monkeypatch, ticks):
    """``time.perf_counter`` in the benchmark returns ``ticks`` in turn (CPU time counts up)."""
    walls = iter(ticks)
    cpus = itertools.count()
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(walls))
    monkeypatch.setattr(timing.time, "thread_time", lambda: float(next(cpus)))


def test_stopwatch_times_the_steps_after_warmup_only(monkeypatch):
    # Step ends at t = 0, 10 (warm-up), then 11, 13, 16: the window is 10 -> 16.
    fake_clock(monkeypatch, [0.0, 10.0, 11.0, 13.0, 16.0, 99.0])
    watch = Stopwatch(warmup=2, steps=3, device=torch.device("cpu"))
    for images in (100, 100, 4, 6, 8):
        assert not watch.done
        watch.stamp(images)
    assert watch.done
    watch.stamp(1000)  # after the window: ignored
    measure = watch.measure()
    assert (measure.steps, measure.images, measure.seconds) == (3, 18, 6.0)
    assert measure.cpu_seconds == 3.0  # main-thread CPU clock over the same three steps
    assert measure.images_per_step == [4, 6, 8]
    assert measure.rate == pytest.approx(3.0)
    assert measure.peak_bytes is not None and measure.peak_bytes > 0


def test_stopwatch_refuses_a_short_run_and_no_warmup():
    watch = Stopwatch(warmup=1, steps=3, device=torch.device("cpu"))
    watch.stamp(2)
    watch.stamp(2)
    with pytest.raises(RuntimeError, match="only 2 steps ran"):
        watch.measure()
    with pytest.raises(ValueError, match="warmup >= 1"):
        Stopwatch(warmup=0, steps=3, device=torch.device("cpu"))


def test_interleaved_steps_each_count_only_their_own_time(monkeypatch):
    # Framework steps take 1 s, plain steps 3 s, alternating on one clock.
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(timing.time, "thread_time", lambda: clock[0])
    cpu = torch.device("cpu")
    framework = Stopwatch(1, 3, cpu)
    plain = Stopwatch(1, 3, cpu, paused=True)

    def plain_step(index):
        clock[0] += 3.0
        return 5

    for _ in range(4):
        clock[0] += 1.0
        framework.stamp(10)
        StepTimer.interleave(framework, plain, plain_step)
    assert framework.measure().seconds == pytest.approx(3.0)  # 3 timed steps of 1 s
    assert plain.measure().seconds == pytest.approx(9.0)  # 3 timed steps of 3 s
    assert plain.measure().cpu_seconds == pytest.approx(9.0)
    assert plain.measure().images_per_step == [5, 5, 5]


def test_loader_timing_starts_a_new_epoch_when_the_loader_is_short():
    loader = [{"image": torch.zeros(n, 3, 2, 2)} for n in (1, 2, 3)]
    timing, batches = time_loader(loader, warmup=1, steps=4)
    assert [len(b["image"]) for b in batches] == [1, 2, 3, 1, 2]
    assert timing.images_per_step == [2, 3, 1, 2]
    with pytest.raises(RuntimeError, match="only 0 steps ran"):
        time_loader([], warmup=1, steps=1)


def measure(images, seconds, peak=None):
    return Measure(
        steps=len(images),
        images=sum(images),
        seconds=seconds,
        cpu_seconds=seconds,
        peak_bytes=peak,
        images_per_step=list(images),
    )


def test_table_has_the_columns_and_the_ratio_of_measured_rates():
    framework = measure([20, 20], 4.0, peak=3 * 2**30)  # 10 img/s
    plain = measure([20, 20], 3.2, peak=2**30)  # 12.5 img/s
    loader = measure([20, 20], 0.1)
    rows = [
        Row("train", framework, plain, loader),
        Row("eval", measure([2, 8], 1.0), measure([2, 8], 0.5), None),
    ]
    assert rows[0].ratio == pytest.approx(0.8)
    lines = markdown_table(rows).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(COLUMNS)
    assert "loader img/s" in header and "framework / plain" in header
    assert len(lines) == 2 + len(rows)
    cells = dict(zip(header, [c.strip() for c in lines[2].strip("|").split("|")], strict=True))
    assert cells["framework img/s"] == "10.00" and cells["plain loop img/s"] == "12.50"
    assert cells["framework / plain"] == "0.800"
    assert cells["framework peak mem"] == "3.00 GiB" and cells["plain peak mem"] == "1.00 GiB"
    assert cells["loader img/s"] == "400.0"
    assert cells["steps x images"] == "2 x 20"
    eval_cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert eval_cells[1] == "2 x 2-8" and eval_cells[4] == "0.500" and eval_cells[-1] == ""


def test_repeats_report_the_repeat_with_the_median_ratio():
    def result(framework_seconds):
        framework = measure([10], framework_seconds)
        return TrainResult(framework, measure([10], 1.0), framework, 5, {})

    results = [result(2.0), result(1.0), result(1.25)]  # ratios 0.5, 1.0, 0.8
    assert median_result(results) is results[2]


def test_plain_loop_precision_matches_lightning_or_refuses():
    cpu = torch.device("cpu")
    with precision_context("bf16-mixed", cpu)():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled(
            "cpu"
        )
    with precision_context("32-true", cpu)():
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="16-mixed"):
        precision_context("16-mixed", cpu)


def test_sync_counting_tallies_warnings_after_the_window_by_line():
    modes = []
    timer = StepTimer(1, 2, torch.device("cpu"), sync_steps=2, set_sync_debug_mode=modes.append)
    batch = {"image": torch.zeros(3, 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # outside the counted steps nothing is recorded
        for step in range(5):
            if step >= 3:  # the two steps after the window
                warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
            timer.on_train_batch_end(None, None, None, batch, step)
    assert modes == ["warn", "default"]
    assert sum(timer.syncs.values()) == 2 and len(timer.syncs) == 1
    (where,) = timer.syncs
    assert where.startswith("test_bench_throughput.py:")
    timer.stop_counting()  # a second stop is harmless
    assert timer.train.measure().images_per_step == [3, 3]


@pytest.mark.parametrize("order", ["--interleave", "--no-interleave"])  # CPU / CUDA default
def test_tiny_run_measures_both_loops_on_the_same_batches(bench, synthetic_root, tmp_path, order):
    out = tmp_path / "out"
    config = tmp_path / "tiny.yaml"
    tiny = tiny_joint_config(synthetic_root, out, loggers=[wandb_logger(out)])
    config.write_text(yaml.safe_dump(tiny))
    work = tmp_path / "work"
    args, cli_args = bench.parse_args(
        ["--warmup", "1", "--steps", "2", "--eval-steps", "1", "--work", str(work), order]
        + ["--config", str(config), "--trainer.enable_progress_bar", "false"]
    )
    assert cli_args[:2] == ["--config", str(config)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, text = bench.run(args, cli_args)
    train, metrics, media = rows
    # One joint step = 2 TJDR patches + 8 RetinaMNIST images, on both sides and in the loader.
    for side in (train.framework, train.plain, train.loader):
        assert side.steps == 2 and side.images_per_step == [10, 10]
    # Evaluation: 1 timed batch per source (2 TJDR images, 8 RetinaMNIST images).
    for side in (metrics.framework, metrics.plain, metrics.loader, media.framework):
        assert side.images_per_step == [2, 8]
    assert train.ratio == pytest.approx(train.framework.rate / train.plain.rate)
    assert train.framework.seconds > 0 and train.plain.seconds > 0
    assert "| phase | steps x images | framework img/s |" in text
    assert "| train | 2 x 10 |" in text and "| eval (metrics + WandbMedia) |" in text
    assert args.interleave == (order == "--interleave")
    assert ("interleaved" in text) == args.interleave
    # The framework ran with the config's logger, redirected into the work folder.
    assert list((work / "logs" / "wandb").glob("offline-run-*"))
    assert not out.exists()


def test_defaults_pick_the_device_config_and_pass_unknown_arguments_on(bench):
    args, cli_args = bench.parse_args(["--device", "cuda", "--model.network.encoder", "resnet18"])
    assert (args.warmup, args.steps) == (5, 30) and cli_args == [
        "--model.network.encoder",
        "resnet18",
    ]
    assert [p.name for p in bench.DEFAULT_CONFIGS["cuda"]] == ["tjdr_retinamnist.yaml", "gpu.yaml"]
    assert isinstance(args, argparse.Namespace) and args.sync_steps == 3
    assert not args.interleave and bench.parse_args([])[0].interleave  # CUDA: one after other
