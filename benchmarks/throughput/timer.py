"""The callback that times the framework's steps, and counts its host-device synchronisations.

On CPU the plain loop's steps can run inside the same ``fit``/``validate``, one after each
framework step, each side's clock stopped while the other runs (:meth:`StepTimer.interleave`),
so a burst of other jobs' load slows both alike. On CUDA a few steps after the window run under
``torch.cuda.set_sync_debug_mode("warn")`` to count host-device synchronisations per code line.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from benchmarks.throughput.plain import PlainEvaluate, PlainTrain
from benchmarks.throughput.timing import Stopwatch, count_images


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
