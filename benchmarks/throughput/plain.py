"""The plain PyTorch loops: the task's network, losses and optimiser without the framework.

They run on batches drawn from the datamodule's loaders beforehand and held in memory (on the
device): compute only. The same precision as the trainer's (``bf16-mixed`` is autocast).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor

from benchmarks.throughput.timing import Measure, Stopwatch, combine_measures, count_images, release
from multitask_dr.models.ordinal import grade_probabilities
from multitask_dr.tasks.batches import split_sources
from multitask_dr.tasks.inference import sliding_window
from multitask_dr.tasks.multitask import MultiTaskDR


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


def graded_index(batch: dict[str, Any], device: torch.device) -> dict[str, Tensor | None]:
    """Per source, the indices of graded images, found on the host before timing.

    A hand-written loop over known data selects them once; the task decides per step.
    """
    index: dict[str, Tensor | None] = {}
    for name, part in split_sources(batch).items():
        rows = torch.nonzero(part["grade"] >= 0).flatten()
        index[name] = rows.to(device) if len(rows) else None
    return index


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
