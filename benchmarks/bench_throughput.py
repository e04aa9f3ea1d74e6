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
import contextlib
import copy
import datetime
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from lightning import Callback, LightningDataModule, LightningModule, Trainer  # noqa: E402
from lightning.fabric.utilities.apply_func import move_data_to_device  # noqa: E402
from torch import Tensor  # noqa: E402

from multitask_dr.lightning_cli import (  # noqa: E402
    MultiTaskCLI,
    WandbSaveConfig,
    default_wandb_mode,
    finish_wandb_run,
)
from multitask_dr.models.ordinal import grade_probabilities  # noqa: E402
from multitask_dr.tasks.batches import split_sources  # noqa: E402
from multitask_dr.tasks.inference import sliding_window  # noqa: E402
from multitask_dr.tasks.multitask import MultiTaskDR  # noqa: E402

DEFAULT_CONFIGS = {
    "cpu": [REPO / "configs" / "demo.yaml"],
    "cuda": [REPO / "configs" / "tjdr_retinamnist.yaml", REPO / "configs" / "gpu" / "gpu.yaml"],
}
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


# ---------------------------------------------------------------------------- measuring
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


def shorten(filename: str) -> str:
    """A source path from its package folder on (``lightning/pytorch/...``)."""
    parts = Path(filename).parts
    for anchor in ("multitask_dr", "lightning", "torch", "torchmetrics", "benchmarks"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) - 1 :])
    return Path(filename).name


class StepTimer(Callback):
    """Stamps the end of every training batch, and of every evaluation batch per dataloader.

    With ``sync_steps``, the training steps after the timed window run under
    ``torch.cuda.set_sync_debug_mode("warn")`` and every host-device synchronisation they make
    is counted by the code line that made it (:attr:`syncs`; not timed).

    Args:
        warmup: Steps before the timed window.
        steps: Timed steps.
        device: Where the work runs.
        sync_steps: Steps after the window whose synchronisations are counted (CUDA).
        set_sync_debug_mode: The switch (``torch.cuda.set_sync_debug_mode``; replaceable in
            tests).
    """

    def __init__(
        self,
        warmup: int,
        steps: int,
        device: torch.device,
        sync_steps: int = 0,
        set_sync_debug_mode: Callable[[str], None] | None = None,
        plain_train: PlainTrain | None = None,
        plain_evaluate: PlainEvaluate | None = None,
    ) -> None:
        super().__init__()
        self.warmup, self.steps, self.device = warmup, steps, device
        self.train = Stopwatch(warmup, steps, device)
        self.eval: dict[int, Stopwatch] = {}
        self.plain_train, self.plain_evaluate = plain_train, plain_evaluate
        self.plain_train_watch = Stopwatch(warmup, steps, device, paused=True)
        self.plain_eval_watches: dict[int, Stopwatch] = {}
        self.sync_steps = sync_steps
        self.set_sync_debug_mode = set_sync_debug_mode or torch.cuda.set_sync_debug_mode
        self.syncs: Counter[str] = Counter()
        self._seen = 0
        self._catcher: warnings.catch_warnings | None = None
        self._records: list[warnings.WarningMessage] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        """Stamp a training step (then run a plain one); count synchronisations after it."""
        self.train.stamp(count_images(batch))
        if self.plain_train is not None and not self.plain_train_watch.done:
            self.interleave(self.train, self.plain_train_watch, self.plain_train.step)
        self._seen += 1
        if not self.sync_steps:
            return
        if self._seen == self.warmup + self.steps:
            self._catcher = warnings.catch_warnings(record=True)
            self._records = self._catcher.__enter__()
            warnings.simplefilter("always")
            self.set_sync_debug_mode("warn")
        elif self._seen == self.warmup + self.steps + self.sync_steps:
            self.stop_counting()

    def stop_counting(self) -> None:
        """Leave the sync debug mode and tally what was recorded (safe to call twice)."""
        if self._catcher is None:
            return
        self.set_sync_debug_mode("default")
        self._catcher.__exit__(None, None, None)
        self._catcher = None
        for record in self._records:
            if "synchroniz" in str(record.message):
                self.syncs[f"{shorten(record.filename)}:{record.lineno}"] += 1

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Stamp an evaluation step of dataloader ``dataloader_idx`` (then run a plain one)."""
        watch = self.eval.setdefault(
            dataloader_idx, Stopwatch(self.warmup, self.steps, self.device)
        )
        watch.stamp(count_images(batch))
        if self.plain_evaluate is not None:
            plain = self.plain_eval_watches.setdefault(
                dataloader_idx, Stopwatch(self.warmup, self.steps, self.device, paused=True)
            )
            if not plain.done:
                loop = self.plain_evaluate
                self.interleave(watch, plain, lambda i: loop.step(dataloader_idx, i))

    @staticmethod
    def interleave(framework: Stopwatch, plain: Stopwatch, step: Callable[[int], int]) -> None:
        """Run the plain loop's next step with the framework's clock stopped, and vice versa.

        Both loops then see the same machine, step by step: other jobs' load on a shared CPU
        slows both alike instead of whichever happened to run during a burst.
        """
        framework.pause()
        plain.resume()
        plain.stamp(step(len(plain.marks)))
        plain.pause()
        framework.resume()


# ---------------------------------------------------------------------------- building
class BenchCLI(MultiTaskCLI):
    """The project's CLI (``run=False``) with the benchmark's trainer settings applied.

    Args:
        trainer_overrides: Trainer keys to set (``max_steps``, ``limit_val_batches``, ...).
        work: Folder for checkpoints and logs, so a benchmark never writes into the config's.
        keep_media: Keep the config's ``WandbMedia`` callbacks (else they are dropped).
        *args: Passed to ``LightningCLI``.
        **kwargs: Passed to ``LightningCLI``.
    """

    def __init__(
        self,
        *args: Any,
        trainer_overrides: dict[str, Any],
        work: Path,
        keep_media: bool = True,
        **kwargs: Any,
    ) -> None:
        self.trainer_overrides, self.work, self.keep_media = trainer_overrides, work, keep_media
        super().__init__(*args, **kwargs)

    def before_instantiate_classes(self) -> None:
        """Apply the overrides to the parsed config before anything is built."""
        trainer = self.config.trainer
        for key, value in self.trainer_overrides.items():
            setattr(trainer, key, value)
        callbacks = trainer.callbacks or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        # The callback groups too (checkpoint, last_checkpoint, media, ...), as parsed: links
        # such as last_checkpoint's folder are already resolved here.
        groups = {key: self.config.get(key) for key in self.parser.callback_keys}
        kept = []
        for key, callback in [*((None, cb) for cb in callbacks), *groups.items()]:
            if callback is None or not hasattr(callback, "class_path"):
                continue
            name = str(callback.class_path)
            if name.endswith("ModelCheckpoint"):
                callback.init_args.dirpath = str(self.work / "checkpoints")
            if name.endswith("WandbMedia") and not self.keep_media:
                if key is not None:
                    self.config[key] = None
                continue
            if key is None:
                kept.append(callback)
        trainer.callbacks = kept
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and "save_dir" in init_args:
                init_args.save_dir = str(self.work / "logs")


def build(
    cli_args: Sequence[str],
    work: Path,
    trainer_overrides: dict[str, Any],
    keep_media: bool = True,
) -> BenchCLI:
    """Parse ``cli_args`` as ``multitask-dr fit`` would and build task, datamodule, trainer."""
    default_wandb_mode()
    return BenchCLI(
        MultiTaskDR,
        LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=WandbSaveConfig,
        save_config_kwargs={"overwrite": True},
        args=list(cli_args),
        run=False,
        trainer_overrides=trainer_overrides,
        work=work,
        keep_media=keep_media,
    )


def precision_context(precision: str, device: torch.device) -> Callable[[], Any]:
    """What the plain loop wraps forward and loss in to match Lightning's ``precision``.

    Raises:
        ValueError: For a precision the plain loop does not reproduce (``16-mixed`` needs a
            gradient scaler; ``bf16-true``/``64`` change parameter dtypes).
    """
    if precision in ("32", "32-true"):
        return contextlib.nullcontext
    if precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"the plain loop reproduces precision 32-true and bf16-mixed, not {precision}")


# ---------------------------------------------------------------------------- data
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


def graded_index(batch: dict[str, Any], device: torch.device) -> dict[str, Tensor | None]:
    """Per source, the indices of graded images, found on the host before timing.

    A hand-written loop over known data selects them once; the task decides per step.
    """
    index: dict[str, Tensor | None] = {}
    for name, part in split_sources(batch).items():
        rows = torch.nonzero(part["grade"] >= 0).flatten()
        index[name] = rows.to(device) if len(rows) else None
    return index


# ---------------------------------------------------------------------------- plain loops
class PlainTrain:
    """A plain training loop over a copy of ``task``'s network, one :meth:`step` at a time.

    Per step and per source: the network's forward (the decoder skipped where the task skips
    it), the task's ``segmentation_loss`` and ``grading_loss``, the sources' mean, the task's
    weights, ``zero_grad``/``backward``/``step`` of AdamW with the task's parameter groups.
    Batches are moved to the device beforehand and cycled.
    """

    def __init__(
        self, task: MultiTaskDR, batches: Sequence[Any], device: torch.device, precision: str
    ) -> None:
        self.task = copy.deepcopy(task).to(device).train()
        self.optimizer = self.task.configure_optimizers()["optimizer"]
        self.autocast = precision_context(precision, device)
        self.batches = [move_data_to_device(batch, device) for batch in batches]
        self.graded = [graded_index(batch, device) for batch in self.batches]
        self.device = device

    def step(self, index: int) -> int:
        """Train on batch ``index`` (cycled); return its number of images."""
        task, hp = self.task, self.task.hparams
        batch, graded = (
            self.batches[index % len(self.batches)],
            self.graded[index % len(self.batches)],
        )
        with self.autocast():
            seg_losses, grade_losses = [], []
            for name, part in split_sources(batch).items():
                out = task.net(part["image"], lesions="mask" in part)
                if "mask" in part:
                    seg_losses.append(task.seg_loss(out["lesion_logits"], part["mask"]))
                rows = graded[name]
                if rows is not None:
                    grade_losses.append(
                        task.grade_loss(out["grade_logits"][rows], part["grade"][rows])
                    )
            loss = torch.zeros((), device=self.device)
            if seg_losses:
                loss = loss + hp.seg_weight * torch.stack(seg_losses).mean()
            if grade_losses:
                loss = loss + hp.grade_weight * torch.stack(grade_losses).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return count_images(batch)


class PlainEvaluate:
    """A plain evaluation loop over a copy of ``task``'s network, per source.

    The same forward the task evaluates with: the whole image (lesion maps and grade), then
    the lesion maps by sliding windows where the image exceeds ``eval_window``; sigmoid and
    grade probabilities, under ``inference_mode``. No losses, no metrics.
    """

    def __init__(
        self,
        task: MultiTaskDR,
        sources: Sequence[Sequence[Any]],
        device: torch.device,
        precision: str,
    ) -> None:
        self.task = copy.deepcopy(task).to(device).eval()
        self.autocast = precision_context(precision, device)
        self.sources = [[move_data_to_device(b, device) for b in batches] for batches in sources]

    def step(self, source: int, index: int) -> int:
        """Evaluate batch ``index`` (cycled) of ``source``; return its number of images."""
        net, hp = self.task.net, self.task.hparams
        batches = self.sources[source]
        image = batches[index % len(batches)]["image"]
        with torch.inference_mode(), self.autocast():
            out = net(image)
            logits = out["lesion_logits"]
            if hp.eval_window is not None and max(image.shape[-2:]) > hp.eval_window:
                logits = sliding_window(net.lesion_logits, image, hp.eval_window, hp.eval_overlap)
            torch.sigmoid(logits)
            grade_probabilities(out["grade_logits"], net.config.grade_output)
        return len(image)


def plain_train(
    task: MultiTaskDR,
    batches: Sequence[Any],
    warmup: int,
    steps: int,
    device: torch.device,
    precision: str,
) -> Measure:
    """Time :class:`PlainTrain` alone for ``warmup + steps`` steps."""
    loop = PlainTrain(task, batches, device, precision)
    watch = Stopwatch(warmup, steps, device)
    for index in range(warmup + steps):
        watch.stamp(loop.step(index))
    del loop
    release(device)
    return watch.measure()


def plain_evaluate(
    task: MultiTaskDR,
    sources: Sequence[Sequence[Any]],
    warmup: int,
    steps: int,
    device: torch.device,
    precision: str,
) -> Measure:
    """Time :class:`PlainEvaluate` alone, ``warmup + steps`` batches per source."""
    loop = PlainEvaluate(task, sources, device, precision)
    measures = []
    for source in range(len(sources)):
        watch = Stopwatch(warmup, steps, device)
        for index in range(warmup + steps):
            watch.stamp(loop.step(source, index))
        measures.append(watch.measure())
    del loop
    release(device)
    return combine_measures(measures)


def release(device: torch.device) -> None:
    """Free what the last phase left (so the next phase's peak memory is its own)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- phases
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


@dataclass
class TrainResult:
    """One training measurement.

    Attributes:
        framework: ``Trainer.fit``'s timed steps.
        plain: The plain loop's timed steps.
        loader: The train loader alone.
        batches_per_epoch: Steps in one epoch of the train loader.
        syncs: Host-device synchronisations per code line over the sync-counted steps.
    """

    framework: Measure
    plain: Measure
    loader: Measure
    batches_per_epoch: int
    syncs: Counter[str]


def train_phase(
    cli_args: Sequence[str],
    work: Path,
    warmup: int,
    steps: int,
    device: torch.device,
    sync_steps: int = 0,
    interleave: bool = False,
) -> TrainResult:
    """Loader alone, then the plain loop and the framework's ``fit``, on one built config.

    With ``interleave`` the plain loop runs one step after each framework step, inside
    ``fit`` (each side's clock stopped while the other runs); otherwise it runs first.
    """
    overrides = {
        "max_steps": warmup + steps + sync_steps,
        "max_epochs": -1,  # only max_steps stops the run (-1: no epoch limit)
        "limit_train_batches": 1.0,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    cli = build(cli_args, work, overrides)
    try:
        datamodule, task, trainer = cli.datamodule, cli.model, cli.trainer
        datamodule.prepare_data()
        datamodule.setup("fit")
        train_loader = datamodule.train_dataloader()
        loader, batches = time_loader(train_loader, warmup, steps)
        batches_per_epoch = len(train_loader)  # (a CombinedLoader knows it once iterated)
        del train_loader
        gc.collect()  # this pass's loader workers end here, before the timed loops
        precision = str(trainer.precision)
        if interleave:
            timer = StepTimer(
                warmup,
                steps,
                device,
                sync_steps,
                plain_train=PlainTrain(task, batches, device, precision),
            )
        else:
            plain = plain_train(task, batches, warmup, steps, device, precision)
            timer = StepTimer(warmup, steps, device, sync_steps)
        del batches
        trainer.callbacks.append(timer)
        try:
            trainer.fit(task, datamodule=datamodule)
        finally:
            timer.stop_counting()
        framework = timer.train.measure()
        if interleave:
            plain = timer.plain_train_watch.measure()
            timer.plain_train = None
    finally:
        finish_wandb_run()
    del cli
    release(device)
    return TrainResult(framework, plain, loader, batches_per_epoch, timer.syncs)


def eval_phase(
    cli_args: Sequence[str],
    work: Path,
    warmup: int,
    steps: int,
    device: torch.device,
    keep_media: bool,
    interleave: bool = False,
) -> tuple[Measure, Measure, Measure]:
    """Loaders alone, then the plain loop and the framework's ``validate``.

    Returns:
        ``(framework, plain, loader)``, each over every evaluation source.
    """
    overrides = {"limit_val_batches": warmup + steps, "num_sanity_val_steps": 0}
    cli = build(cli_args, work, overrides, keep_media=keep_media)
    try:
        datamodule, task, trainer = cli.datamodule, cli.model, cli.trainer
        datamodule.prepare_data()
        datamodule.setup("fit")
        val = datamodule.val_dataloader()
        loaders = val if isinstance(val, list) else [val]
        timed = [time_loader(each, warmup, steps) for each in loaders]
        loader = combine_measures([measure for measure, _ in timed])
        sources = [batches for _, batches in timed]
        del val, loaders, timed
        gc.collect()
        precision = str(trainer.precision)
        if interleave:
            evaluate = PlainEvaluate(task, sources, device, precision)
            timer = StepTimer(warmup, steps, device, plain_evaluate=evaluate)
        else:
            plain = plain_evaluate(task, sources, warmup, steps, device, precision)
            timer = StepTimer(warmup, steps, device)
        del sources
        trainer.callbacks.append(timer)
        trainer.validate(task, datamodule=datamodule, verbose=False)
        framework = combine_measures([timer.eval[i].measure() for i in sorted(timer.eval)])
        if interleave:
            watches = timer.plain_eval_watches
            plain = combine_measures([watches[i].measure() for i in sorted(watches)])
            timer.plain_evaluate = None
    finally:
        finish_wandb_run()
    del cli
    release(device)
    return framework, plain, loader


def median_result(results: Sequence[TrainResult]) -> TrainResult:
    """The repeat whose framework / plain ratio is the median (the table shows that repeat)."""
    ordered = sorted(results, key=lambda r: r.framework.rate / r.plain.rate)
    return ordered[(len(ordered) - 1) // 2]


# ---------------------------------------------------------------------------- report
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
