"""Check the GPU configs end to end on a GPU in a few minutes, then measure throughput.

Run ``scripts/gpu_check.sh`` (this file, with the project's venv) on a machine with a CUDA GPU
and the project installed. In a fresh work folder it:

1. writes synthetic data at full resolution (TJDR-layout 1024² photographs and masks,
   RetinaMNIST at 224²) with ``multitask-dr synth``;
2. runs a short ``fit`` (a few steps, two validation batches per source, so the sliding-window
   validation, the metrics, ``WandbMedia`` and the checkpoint all run) of
   ``configs/tjdr_retinamnist.yaml`` under every ``configs/gpu/*.yaml`` overlay one machine can
   run: ``gpu.yaml`` (1 GPU) and ``ddp.yaml`` on top of it (every visible GPU; with one GPU,
   DDP in one process over NCCL). ``multinode.yaml`` is parsed, not run (it needs 2 machines
   under SLURM);
3. ``test`` of the 1-GPU checkpoint (whole 1024² images by 512² sliding windows) and
   ``predict`` on the synthetic test photographs;
4. ``benchmarks/bench_throughput.py --device cuda`` on the 1-GPU config: the framework
   against a plain PyTorch loop, in bf16.

It prints a summary and exits 1 if any step failed (each step's output is in
``WORK/step_logs/``). The encoder starts from random weights
(``--model.network.encoder_weights null``) unless ``--imagenet`` is given, which needs the
network or a filled Hugging Face cache.
W&B runs offline unless ``WANDB_MODE`` says otherwise.

``--cpu`` runs the same steps on the CPU at tiny sizes (tiny encoder, 64² images), which checks
the script itself and the configs' plumbing on any machine; ``--dry-run`` prints the commands.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "configs" / "base.yaml"
EXPERIMENT = REPO / "configs" / "tjdr_retinamnist.yaml"
GPU_CONFIGS = REPO / "configs" / "gpu"
GPU = GPU_CONFIGS / "gpu.yaml"
DDP = GPU_CONFIGS / "ddp.yaml"
MULTINODE = GPU_CONFIGS / "multinode.yaml"
#: The config stacks (``--config`` in order) of the 1-GPU, DDP and 2-node runs.
SINGLE = [EXPERIMENT, GPU]
DDP_STACK = [*SINGLE, DDP]
MULTINODE_STACK = [*DDP_STACK, MULTINODE]
SEG = "--data.init_args.segmentation.init_args"
GRADE = "--data.init_args.grading.init_args"

# Full resolution: TJDR photographs written at the configs' 1024² working size, RetinaMNIST at
# 224². Validation sets hold 4+ evaluation batches of each source (the benchmark times 1 + 3).
FULL_SYNTH = [
    "--size", "1024", "--n-train", "48", "--n-test", "4", "--no-labelme",
    "--retina-sizes", "224", "--retina-n-train", "256", "--retina-n-val", "128",
    "--retina-n-test", "64",
]  # fmt: skip
TINY_SYNTH = [
    "--size", "96", "--n-train", "12", "--n-test", "2", "--no-labelme",
    "--retina-sizes", "28", "--retina-n-train", "40", "--retina-n-val", "20",
    "--retina-n-test", "20",
]  # fmt: skip
# --cpu: the GPU configs shrunk to seconds on a CPU (same keys, same code paths).
TINY_OVERRIDES = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "1",
    "--model.network.encoder", "tu-test_resnet",
    "--model.network.decoder_channels", "[16, 16, 8, 8, 8]",
    "--model.eval_window", "32",
    f"{SEG}.image_size", "64", f"{SEG}.patch_size", "32", f"{SEG}.batch_size", "2",
    f"{SEG}.eval_batch_size", "2", f"{SEG}.num_workers", "0",
    f"{GRADE}.size", "28", f"{GRADE}.image_size", "32", f"{GRADE}.batch_size", "8",
    f"{GRADE}.num_workers", "0",
]  # fmt: skip


@dataclass
class Step:
    """One command of the check.

    Attributes:
        name: Short name in the summary.
        argv: The command.
        check: Called after a zero exit with the work folder; returns a failure message or
            ``None``.
        skip: Why the step is not run (``None``: run it).
    """

    name: str
    argv: list[str]
    check: Callable[[Path], str | None] | None = None
    skip: str | None = None


@dataclass
class Outcome:
    """What one step did."""

    step: Step
    status: str
    seconds: float = 0.0
    message: str = ""
    log: Path | None = None


@dataclass
class Plan:
    """Every step, for one mode, in one work folder."""

    work: Path
    cpu: bool
    steps: list[Step] = field(default_factory=list)


def config_args(stack: Sequence[Path]) -> list[str]:
    """``--config P`` for each file of ``stack``, in order."""
    return [arg for path in stack for arg in ("--config", str(path))]


def checkpoint_path(stack: Sequence[Path], work: Path) -> Path:
    """Where ``stack``'s ``checkpoint`` callback writes the best checkpoint, from ``work``.

    The last file naming ``checkpoint.dirpath`` or ``filename`` wins, ``configs/base.yaml``
    first, as the CLI reads them. (Configs also keep ``last_checkpoint`` for resuming.)
    """
    settings: dict[str, str] = {}
    for path in [BASE, *stack]:
        group = (yaml.safe_load(path.read_text()) or {}).get("checkpoint") or {}
        settings |= group.get("init_args", group)
    return work / settings["dirpath"] / f"{settings['filename']}.ckpt"


def expect_file(path: Path, contains: str | None = None) -> Callable[[Path], str | None]:
    """A check that ``path`` exists (and holds ``contains``)."""

    def check(_: Path) -> str | None:
        if not path.is_file():
            return f"{path} was not written"
        if contains is not None and contains not in path.read_text(errors="replace"):
            return f"{path} does not contain {contains!r}"
        return None

    return check


def build_plan(work: Path, cpu: bool = False, imagenet: bool = False) -> Plan:
    """The check's steps; commands run with ``work`` as working folder.

    Args:
        work: Work folder (data, logs, checkpoints, predictions, the throughput table).
        cpu: Tiny sizes on the CPU instead of full resolution on the GPU.
        imagenet: Keep the configs' ImageNet encoder weights (downloaded by smp).
    """
    python = sys.executable
    cli = [python, "-m", "multitask_dr"]
    data = work / "data"
    common = [f"{SEG}.root", str(data / "tjdr"), f"{GRADE}.root", str(data / "retinamnist")]
    if not imagenet:
        common += ["--model.network.encoder_weights", "null"]
    if cpu:
        common += TINY_OVERRIDES
    short_fit = [
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6",
        "--trainer.limit_val_batches", "2",
    ]  # fmt: skip
    ckpt = checkpoint_path(SINGLE, work)
    ddp_ckpt = checkpoint_path(DDP_STACK, work)
    predictions = work / "predictions"
    table = work / "throughput.md"
    plan = Plan(work=work, cpu=cpu)
    plan.steps = [
        Step(
            "environment",
            [python, str(Path(__file__).resolve()), "--environment", "cpu" if cpu else "cuda"],
        ),
        Step(
            "synthetic data",
            [*cli, "synth", "--out", str(data), *(TINY_SYNTH if cpu else FULL_SYNTH)],
            expect_file(data / "tjdr" / "test" / "grades.csv"),
        ),
        Step(
            f"fit {EXPERIMENT.name}",
            [*cli, "fit", *config_args(SINGLE), *common, *short_fit],
            expect_file(ckpt),
        ),
        Step(
            f"fit {DDP.name}",
            [*cli, "fit", *config_args(DDP_STACK), *common, *short_fit],
            expect_file(ddp_ckpt),
        ),
        Step(
            f"parse {MULTINODE.name}",
            [*cli, "fit", *config_args(MULTINODE_STACK), *common, "--print_config"],
        ),
        Step(
            f"test {EXPERIMENT.name} (sliding windows)",
            [*cli, "test", *config_args(SINGLE), *common, "--ckpt_path", str(ckpt)],
        ),
        Step(
            f"predict {EXPERIMENT.name}",
            [
                *cli,
                "predict",
                *config_args(SINGLE),
                *common,
                "--ckpt_path",
                str(ckpt),
                "--data.init_args.predict_dir",
                str(data / "tjdr" / "test" / "image"),
                "--prediction.output_dir",
                str(predictions),
            ],  # fmt: skip
            expect_file(predictions / "summary.csv", "001"),
        ),
        Step(
            "throughput",
            [
                python,
                str(REPO / "benchmarks" / "bench_throughput.py"),
                "--device",
                "cpu" if cpu else "cuda",
                *config_args(SINGLE),
                *common,
                # Long enough epochs that the timed steps never cross an epoch end.
                f"{SEG}.patches_per_image",
                "8",
                "--work",
                str(work / "bench"),
                "--output",
                str(table),
                *(["--warmup", "1", "--steps", "2", "--eval-steps", "1"] if cpu else []),
            ],  # fmt: skip
            expect_file(table, "| train |"),
        ),
    ]
    return plan


def environment(device: str) -> int:
    """Print torch, CUDA and the GPUs; 1 when ``device`` is ``cuda`` and none is visible."""
    import torch

    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {sys.executable}")
    if device != "cuda":
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device is visible: run on a GPU machine (or pass --cpu)")
        return 1
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        memory = props.total_memory / 2**30
        print(f"GPU {i}: {props.name}, {memory:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}")
    return 0


def run_step(step: Step, work: Path, log: Path, timeout: float) -> Outcome:
    """Run one step as a subprocess in ``work``, its output into ``log``."""
    if step.skip is not None:
        return Outcome(step, "SKIP", message=step.skip)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        handle.write("$ " + shlex.join(step.argv) + "\n\n")
        handle.flush()
        try:
            done = subprocess.run(
                step.argv, cwd=work, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
            )
            code: int | None = done.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - start
    if code is None:
        return Outcome(step, "FAIL", seconds, f"timed out after {timeout:.0f} s", log)
    if code != 0:
        return Outcome(step, "FAIL", seconds, f"exit status {code}", log)
    problem = step.check(work) if step.check is not None else None
    if problem is not None:
        return Outcome(step, "FAIL", seconds, problem, log)
    return Outcome(step, "PASS", seconds, "", log)


def slug(name: str) -> str:
    """A file-name-safe version of a step name."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:40]


def summary(outcomes: Sequence[Outcome], table: Path) -> str:
    """The printed summary: one line per step, then the throughput table if written."""
    lines = ["", "| step | status | seconds | note |", "|---|---|---|---|"]
    for o in outcomes:
        note = o.message + (f" (log: {o.log})" if o.status == "FAIL" and o.log else "")
        lines.append(f"| {o.step.name} | {o.status} | {o.seconds:.0f} | {note} |")
    if table.is_file():
        lines += ["", table.read_text().rstrip()]
    failed = sum(o.status == "FAIL" for o in outcomes)
    lines += ["", f"gpu_check: {'FAILED' if failed else 'passed'} ({failed} step(s) failed)"]
    return "\n".join(lines)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; 0 when every step passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: new tmp)")
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--imagenet", action="store_true", help="keep ImageNet encoder weights")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per step")
    parser.add_argument("--environment", choices=("cpu", "cuda"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.environment:
        return environment(args.environment)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work = work.resolve()
    plan = build_plan(work, cpu=args.cpu, imagenet=args.imagenet)
    if args.dry_run:
        for step in plan.steps:
            print(f"# {step.name}\n{shlex.join(step.argv)}\n")
        return 0
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if not args.imagenet:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cpu:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"gpu_check: {'CPU, tiny sizes' if args.cpu else 'GPU, full resolution'}; work {work}")
    outcomes = []
    for index, step in enumerate(plan.steps):
        print(f"- {step.name} ...", flush=True)
        log = work / "step_logs" / f"{index:02d}_{slug(step.name)}.log"
        outcome = run_step(step, work, log, args.timeout)
        print(f"  {outcome.status} in {outcome.seconds:.0f} s {outcome.message}", flush=True)
        if outcome.status == "FAIL" and outcome.log is not None:
            print(tail(outcome.log), flush=True)
        outcomes.append(outcome)
        if outcome.status == "FAIL" and step.name == "environment":
            break  # nothing else can run
    print(summary(outcomes, work / "throughput.md"))
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
