"""Timing windows: step-end stamps, what the timed steps did, the loader timed alone.

A window runs from the end of the last warm-up step to the end of the last timed step. Peak
memory is ``max_memory_allocated`` over the timed steps on CUDA, the largest resident set size
seen at a step end on CPU (one process: both sides show about the same).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from multitask_dr.tasks.batches import split_sources


@dataclass
class Mark:
    """One stamp at the end of a step (``paused_*``: time excluded so far)."""

    wall: float
    cpu: float
    images: int
    paused_wall: float = 0.0
    paused_cpu: float = 0.0


@dataclass
class Measure:
    """What the timed steps of one side did.

    Attributes:
        steps: Timed steps (after warm-up).
        images: Images in those steps, all sources together.
        seconds: Wall-clock time of those steps.
        cpu_seconds: CPU time of the main thread over the same steps (where the steps, and
            a loader without workers, run; hardly moved by other processes' load).
        peak_bytes: Peak device memory (CUDA) or resident set size (CPU), ``None`` if unknown.
        images_per_step: Images of each timed step (to compare both sides' batches).
    """

    steps: int
    images: int
    seconds: float
    cpu_seconds: float
    peak_bytes: int | None
    images_per_step: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Images per second."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def resident_bytes() -> int:
    """This process's resident set size now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def count_images(batch: Any) -> int:
    """Images in a (joint or single-source) batch."""
    return sum(len(part["image"]) for part in split_sources(batch).values())


class Stopwatch:
    """Stamps step ends; the timed window runs from the end of the last warm-up step.

    Time between :meth:`pause` and :meth:`resume` is left out (the other side's step, when
    the two loops are interleaved).

    Args:
        warmup: Steps before the window (at least 1: the first step pays for set-up).
        steps: Steps in the window; stamps after it are ignored.
        device: Where the work runs: CUDA is synchronised at the window's two ends only, and
            its peak memory counter reset at the start.
        paused: Start paused (the clock runs from the first :meth:`resume`).
    """

    def __init__(self, warmup: int, steps: int, device: torch.device, paused: bool = False) -> None:
        if warmup < 1 or steps < 1:
            raise ValueError(f"need warmup >= 1 and steps >= 1, got {warmup} and {steps}")
        self.warmup, self.steps, self.device = warmup, steps, device
        self.marks: list[Mark] = []
        self.peak: int | None = None
        self._paused_wall = self._paused_cpu = 0.0
        self._since: tuple[float, float] | None = None
        if paused:
            self.pause()

    def pause(self) -> None:
        """Stop the clock (until :meth:`resume`)."""
        if self._since is None:
            self._since = (time.perf_counter(), time.thread_time())

    def resume(self) -> None:
        """Start the clock again."""
        if self._since is not None:
            wall, cpu = self._since
            self._paused_wall += time.perf_counter() - wall
            self._paused_cpu += time.thread_time() - cpu
            self._since = None

    @property
    def done(self) -> bool:
        """Whether the window is complete."""
        return len(self.marks) >= self.warmup + self.steps

    def stamp(self, images: int) -> None:
        """Record the end of a step of ``images`` images."""
        index = len(self.marks)
        if index >= self.warmup + self.steps:
            return
        edge = index in (self.warmup - 1, self.warmup + self.steps - 1)
        cuda = self.device.type == "cuda"
        if cuda and edge:
            torch.cuda.synchronize(self.device)
        mark = Mark(time.perf_counter(), time.thread_time(), images)
        mark.paused_wall, mark.paused_cpu = self._paused_wall, self._paused_cpu
        self.marks.append(mark)
        if index == self.warmup - 1:
            if cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
            else:
                self.peak = resident_bytes()
        elif index >= self.warmup:
            if cuda:
                self.peak = torch.cuda.max_memory_allocated(self.device)
            else:
                self.peak = max(self.peak or 0, resident_bytes())

    def measure(self) -> Measure:
        """The timed window.

        Raises:
            RuntimeError: When fewer than ``warmup + steps`` steps ran (a short loader).
        """
        if not self.done:
            raise RuntimeError(
                f"only {len(self.marks)} steps ran, {self.warmup} + {self.steps} needed: "
                "use fewer steps or more data"
            )
        start, window = self.marks[self.warmup - 1], self.marks[self.warmup :]
        return Measure(
            steps=len(window),
            images=sum(m.images for m in window),
            seconds=(window[-1].wall - start.wall) - (window[-1].paused_wall - start.paused_wall),
            cpu_seconds=(window[-1].cpu - start.cpu) - (window[-1].paused_cpu - start.paused_cpu),
            peak_bytes=self.peak,
            images_per_step=[m.images for m in window],
        )


def combine_measures(measures: Sequence[Measure]) -> Measure:
    """Several windows (e.g. one per evaluation source) as one."""
    peaks = [m.peak_bytes for m in measures if m.peak_bytes is not None]
    return Measure(
        steps=sum(m.steps for m in measures),
        images=sum(m.images for m in measures),
        seconds=sum(m.seconds for m in measures),
        cpu_seconds=sum(m.cpu_seconds for m in measures),
        peak_bytes=max(peaks) if peaks else None,
        images_per_step=[n for m in measures for n in m.images_per_step],
    )


def iterate_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of a DataLoader or of Lightning's ``CombinedLoader`` (which yields triples)."""
    from lightning.pytorch.utilities import CombinedLoader

    for item in loader:
        yield item[0] if isinstance(loader, CombinedLoader) else item


def time_loader(loader: Iterable[Any], warmup: int, steps: int) -> tuple[Measure, list[Any]]:
    """Iterate ``loader`` alone for ``warmup + steps`` batches; return the timing and batches.

    A loader shorter than that is iterated again (a new epoch), as training would.
    """
    watch = Stopwatch(warmup, steps, torch.device("cpu"))
    batches: list[Any] = []
    while not watch.done:
        before = len(batches)
        iterator = iterate_batches(loader)
        for batch in iterator:
            batches.append(batch)
            watch.stamp(count_images(batch))
            if watch.done:
                break
        del iterator  # stops the workers of this pass
        if len(batches) == before:
            break  # an empty loader: measure() says so
    return watch.measure(), batches


def release(device: torch.device) -> None:
    """Free what the last phase left (so the next phase's peak memory is its own)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
