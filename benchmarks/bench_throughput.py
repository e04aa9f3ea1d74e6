"""Framework throughput against a plain PyTorch loop on the same network, batches and hardware.

For one config (built exactly as ``multitask-dr fit --config ...`` builds it: the project's
LightningCLI, the real task, datamodule, callbacks and logger) it measures, in one run:

- **framework, train**: ``Trainer.fit`` for ``warmup + steps`` steps (``max_steps``, validation
  off); a callback stamps the end of every training batch, and the rate is taken from the end of
  the last warm-up step to the end of the last step, so loading, logging, progress bar and every
  callback hook between steps are inside;
- **plain loop, train**: the same ``MultiTaskNet`` (a copy of the task's), the task's own AdamW
  parameter groups and loss functions (Dice + BCE, the grading loss, the same weights), the same
  precision (``bf16-mixed`` is autocast), on batches drawn from the same train loader beforehand
  and held in memory (on the device): compute only;
- **loader**: the datamodule's train (and validation) loader iterated alone;
- **framework, eval**: ``Trainer.validate`` (metrics, losses, sliding windows; once without and
  once with the config's ``WandbMedia``) against a plain ``inference_mode`` loop running the
  network the task evaluates with (whole-image forward, then sliding windows where the image
  is larger than ``eval_window``).

Images/s count every source's images (a joint step = one TJDR batch + one RetinaMNIST batch).
On CPU (default ``--interleave``) the plain loop runs one step after each framework step inside
the same ``fit``/``validate``, each side's clock stopped while the other runs, so a burst of
other jobs' load slows both alike; the main thread's CPU time per step is printed as a second,
load-independent figure. On CUDA the two run one after the other (they would share the
device's queue), the device is synchronised at the two timing marks only, so queued work is
counted and the host may run ahead as in training, and a few steps after the window are run
under ``torch.cuda.set_sync_debug_mode("warn")`` to count host-device synchronisations per code
line. Peak memory is ``max_memory_allocated`` over the timed steps on CUDA, the largest
resident set size seen at a step end on CPU (one process: both sides show about the same).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_throughput.py            # CPU, configs/demo.yaml
    python benchmarks/bench_throughput.py --device cuda   # tjdr_retinamnist + gpu/gpu.yaml, bf16
    python benchmarks/bench_throughput.py --config my.yaml --model.network.encoder tu-test_resnet

Arguments the benchmark does not know are passed to the CLI (``--config`` and any override).
Prints a Markdown table (also written to ``--output``); no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.throughput.phases import eval_phase, median_result, train_phase  # noqa: E402
from benchmarks.throughput.report import Row, report  # noqa: E402

DEFAULT_CONFIGS = {
    "cpu": [REPO / "configs" / "demo.yaml"],
    "cuda": [REPO / "configs" / "tjdr_retinamnist.yaml", REPO / "configs" / "gpu" / "gpu.yaml"],
}


def run(args: argparse.Namespace, cli_args: list[str]) -> tuple[list[Row], str]:
    """Every phase of the benchmark; returns the rows and the printed report.

    Logs and checkpoints go to ``--work``, or to a temporary folder removed at the end.
    """
    if args.work:
        return measure_all(args, cli_args, Path(args.work))
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as work:
        return measure_all(args, cli_args, Path(work))


def measure_all(args: argparse.Namespace, cli_args: list[str], work: Path) -> tuple[list[Row], str]:
    """:func:`run` in the work folder ``work``."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    if not any(a == "--config" or a.startswith("--config=") for a in cli_args):
        defaults = [arg for path in DEFAULT_CONFIGS[device.type] for arg in ("--config", str(path))]
        cli_args = [*defaults, *cli_args]
    if device.type == "cpu":
        cli_args = [*cli_args, "--trainer.accelerator", "cpu"]
    results = []
    for repeat in range(args.repeats):
        sync_steps = args.sync_steps if device.type == "cuda" and repeat == 0 else 0
        results.append(
            train_phase(
                cli_args, work, args.warmup, args.steps, device, sync_steps, args.interleave
            )
        )
    middle = median_result(results)
    rows = [Row("train", middle.framework, middle.plain, middle.loader)]
    if args.eval_steps > 0:
        warm, steps = args.eval_warmup, args.eval_steps
        kinds = [("eval (metrics)", False)]
        if not args.no_media:
            kinds.append(("eval (metrics + WandbMedia)", True))
        for name, media in kinds:
            framework, plain, loader = eval_phase(
                cli_args, work, warm, steps, device, media, args.interleave
            )
            rows.append(Row(name, framework, plain, loader))
    return rows, report(args, cli_args, device, rows, results)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The benchmark's own options; everything else goes to the CLI."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None, allow_abbrev=False
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--warmup", type=int, default=None, help="train warm-up steps")
    parser.add_argument("--steps", type=int, default=None, help="timed train steps")
    parser.add_argument("--eval-warmup", type=int, default=1, help="eval warm-up steps")
    parser.add_argument(
        "--eval-steps", type=int, default=None, help="timed eval steps per source (0: no eval)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="train measurements (median)")
    parser.add_argument(
        "--sync-steps",
        type=int,
        default=3,
        help="CUDA: framework steps after the window whose host-device syncs are counted",
    )
    parser.add_argument("--no-media", action="store_true", help="skip the WandbMedia eval row")
    parser.add_argument(
        "--interleave",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="alternate plain and framework steps in one run (default: on CPU only; on CUDA "
        "the two would share the device's queue)",
    )
    parser.add_argument(
        "--work", default=None, help="folder for logs/checkpoints (default: a removed tmp)"
    )
    parser.add_argument("--output", default=None, help="also write the report to this file")
    args, cli_args = parser.parse_known_args(argv)
    cuda = args.device == "cuda"
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    args.steps = args.steps if args.steps is not None else (30 if cuda else 8)
    args.eval_steps = args.eval_steps if args.eval_steps is not None else 3
    args.interleave = (not cuda) if args.interleave is None else args.interleave
    return args, cli_args


def main(argv: Sequence[str] | None = None) -> int:
    args, cli_args = parse_args(argv)
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, text = run(args, cli_args)
    print("\n" + text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
