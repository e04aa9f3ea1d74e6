"""The framework side, built as ``multitask-dr fit`` builds it, and the measured phases.

Each phase builds the config with the project's LightningCLI (the real task, datamodule,
callbacks and logger, writing into the benchmark's work folder), times the loader alone, then
the plain loop and the framework (``Trainer.fit`` or ``Trainer.validate``) on the same batches.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule

from benchmarks.throughput.plain import PlainEvaluate, PlainTrain, plain_evaluate, plain_train
from benchmarks.throughput.timer import StepTimer
from benchmarks.throughput.timing import Measure, combine_measures, release, time_loader
from multitask_dr.lightning_cli import MultiTaskCLI
from multitask_dr.tasks.multitask import MultiTaskDR
from multitask_dr.wandb_run import WandbSaveConfig, default_wandb_mode, finish_wandb_run


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
