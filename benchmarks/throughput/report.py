"""The benchmark's report: a Markdown table of the phases, the machine, notes on the runs."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.throughput.phases import TrainResult
from benchmarks.throughput.timing import Measure

REPO = Path(__file__).resolve().parents[2]
COLUMNS = (
    "phase",
    "steps x images",
    "framework img/s",
    "plain loop img/s",
    "framework / plain",
    "framework peak mem",
    "plain peak mem",
    "loader img/s",
)


@dataclass
class Row:
    """One line of the table."""

    phase: str
    framework: Measure
    plain: Measure
    loader: Measure | None

    @property
    def ratio(self) -> float:
        """Framework images/s over plain-loop images/s."""
        return self.framework.rate / self.plain.rate


def human_bytes(value: int | None) -> str:
    """``1.5 GiB``-style size (``n/a`` when unknown)."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") else f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def steps_label(measure: Measure) -> str:
    """``8 x 20`` (timed steps x images per step; a range when steps differ)."""
    sizes = sorted(set(measure.images_per_step))
    per = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    return f"{measure.steps} x {per}"


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table with :data:`COLUMNS`."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = (
            row.phase,
            steps_label(row.framework),
            f"{row.framework.rate:.2f}",
            f"{row.plain.rate:.2f}",
            f"{row.ratio:.3f}",
            human_bytes(row.framework.peak_bytes),
            human_bytes(row.plain.peak_bytes),
            "" if row.loader is None else f"{row.loader.rate:.1f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(device: torch.device) -> str:
    """What ran: device name, threads, load, versions, commit, date."""
    if device.type == "cuda":
        hardware = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        hardware = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{datetime.date.today().isoformat()}, {hardware}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s), load average {load}, commit {commit or '?'}"
    )


def report(
    args: argparse.Namespace,
    cli_args: Sequence[str],
    device: torch.device,
    rows: Sequence[Row],
    results: Sequence[TrainResult],
) -> str:
    """The printed report: settings, machine, the table and notes on the training runs."""
    config = [a for i, a in enumerate(cli_args) if i and cli_args[i - 1] == "--config"]
    ratios = ", ".join(f"{r.framework.rate / r.plain.rate:.3f}" for r in results)
    cpu = statistics.median(r.framework.cpu_seconds / r.framework.steps for r in results)
    cpu_plain = statistics.median(r.plain.cpu_seconds / r.plain.steps for r in results)
    lines = [
        f"config: {', '.join(Path(c).name for c in config)}; device {device.type}; "
        f"warm-up {args.warmup} + {args.steps} timed train steps, "
        f"{args.eval_warmup} + {args.eval_steps} eval steps per source; "
        f"repeats {args.repeats} (the table shows the median repeat); "
        + ("plain and framework steps interleaved" if args.interleave else "one after the other"),
        f"machine: {machine_line(device)}",
        "",
        markdown_table(rows),
        "",
        f"train framework / plain per repeat: {ratios}. Main-thread CPU time per train step "
        f"(load-independent; counts a loader without workers, not worker processes): framework "
        f"{cpu * 1000:.0f} ms, plain {cpu_plain * 1000:.0f} ms, plain / framework "
        f"{cpu_plain / cpu:.3f}",
    ]
    crossing = [
        r.batches_per_epoch for r in results if r.batches_per_epoch < args.warmup + args.steps
    ]
    if crossing:
        lines.append(
            f"note: an epoch has {crossing[0]} steps, fewer than the {args.warmup + args.steps} "
            "measured: the window includes epoch ends (use more data or patches_per_image)"
        )
    syncs = results[0].syncs if results else Counter()
    if device.type == "cuda" and args.sync_steps:
        total = sum(syncs.values())
        where = ", ".join(f"{line} x{n}" for line, n in syncs.most_common(8)) or "none"
        lines.append(
            f"host-device synchronisations in {args.sync_steps} framework steps after the "
            f"window: {total} ({where})"
        )
    return "\n".join(lines)
