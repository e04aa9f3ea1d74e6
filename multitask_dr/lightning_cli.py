"""Lightning's command line over the project: ``fit``, ``validate``, ``test``, ``predict``.

Kept apart from :mod:`multitask_dr.cli`, which dispatches to it, because importing Lightning,
torch and timm (which imports wandb) takes seconds that ``check-data`` and ``synth`` do not
need.

What it adds to :class:`~lightning.pytorch.cli.LightningCLI`:

- ``configs/base.yaml`` read before any ``--config`` (``configs/README.md``: a base plus
  overlays), and the callbacks every run shares as their own config groups, so an overlay
  changes one key of one of them instead of restating the ``trainer.callbacks`` list:
  ``checkpoint`` (the best by its ``monitor``), ``last_checkpoint`` (rewritten after every epoch,
  in ``checkpoint``'s folder), ``lr_monitor`` and ``media``; ``null`` turns one off;
- a checked ``--ckpt_path`` (:func:`~multitask_dr.checkpoints.check_checkpoint`) and no
  ``predict`` without one; with a checkpoint the architecture comes from its hyper-parameters
  (Lightning's rule) but the evaluation settings
  (:data:`~multitask_dr.tasks.multitask.EVALUATION_SETTINGS`) from the command;
- configuration values the classes reject become a :class:`~multitask_dr.errors.ConfigError`;
- **signals**: SIGTERM (Lightning's own handling) and SIGINT (routed to it) stop ``fit`` at the
  end of the current batch, without writing a checkpoint of the half-done epoch; the last
  end-of-epoch checkpoint is what a resumed run starts from, and the command ends with
  :class:`~multitask_dr.errors.Interrupted` (exit 143 or 130) instead of Lightning's exit 0.
"""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from lightning import LightningDataModule, Trainer
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from multitask_dr.callbacks import WandbMedia
from multitask_dr.checkpoints import check_checkpoint
from multitask_dr.cli import BASE_CONFIG, CONFIG_DIR, DEBUG_HINT, config_names
from multitask_dr.errors import ConfigError, Interrupted, UserError
from multitask_dr.models.network import NetworkConfig
from multitask_dr.predict import PredictionWriter
from multitask_dr.summary import summarise_run
from multitask_dr.tasks.multitask import EVALUATION_SETTINGS, MultiTaskDR
from multitask_dr.wandb_run import (
    WandbSaveConfig,
    default_wandb_mode,
    finish_wandb_run,
    wandb_run_dir,
)

#: Lightning's WeightAveraging (e.g. EMA weights) warns outside ``fit`` that it cannot restore
#: its own state. It need not: the checkpoint's weights are already the averaged ones, which is
#: what ``validate``/``test``/``predict`` should use.
AVERAGING_OUTSIDE_FIT = (
    "You're using the WeightAveraging callback, but loading a checkpoint outside"
)
#: ``--ckpt_path`` values Lightning resolves itself rather than reading a file of that name.
CKPT_KEYWORDS = frozenset({"best", "last", "hpc", "registry"})


class MultiTaskCLI(LightningCLI):
    """LightningCLI with the project's task and any of its datamodules, over ``base.yaml``."""

    def __init__(
        self, *args: Any, parser_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """As LightningCLI; each parser reads :data:`~multitask_dr.cli.BASE_CONFIG` first."""
        parser_kwargs = dict(parser_kwargs or {})
        base = {"default_config_files": [str(BASE_CONFIG)]}
        if kwargs.get("run", True):
            # Per subcommand: the main parser's default file would need a `fit:` level.
            for name in self.subcommands():
                parser_kwargs[name] = base | parser_kwargs.get(name, {})
        else:
            parser_kwargs |= base
        super().__init__(*args, parser_kwargs=parser_kwargs, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        """List the configs in ``--help``; add the prediction writer and the callback groups."""
        configs = config_names()
        if configs:
            parser.description = (parser.description or "") + (
                f"\n\nConfigs in {CONFIG_DIR}: " + ", ".join(configs)
            )
        # Attached in every subcommand (it acts only in predict), so `predict` never runs
        # without writing its results and a run's saved config says where they would go.
        parser.add_lightning_class_args(PredictionWriter, "prediction")
        # Groups rather than trainer.callbacks entries: an overlay replaces a list whole, but
        # changes one key of a group. Nullable, so a config can turn one off. Two checkpoint
        # callbacks rather than `save_last`: beside a monitored checkpoint, Lightning 2.6
        # refreshes last.ckpt only when the monitored one improves, so an interrupted fit would
        # resume from a stale epoch. One folder for both (the link).
        for key, callback in (
            ("checkpoint", ModelCheckpoint),
            ("last_checkpoint", ModelCheckpoint),
            ("lr_monitor", LearningRateMonitor),
            ("media", WandbMedia),
        ):
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
        parser.link_arguments("checkpoint.init_args.dirpath", "last_checkpoint.init_args.dirpath")
        parser.add_argument(
            "--summary",
            type=bool,
            default=False,
            help="after test: print the headline metrics, checkpoint, W&B run and next commands",
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer: ``trainer.callbacks``, then the callback groups that are not ``null``.

        A Rich progress bar is added unless one is configured or bars are off; here rather than
        listed in every config: Lightning refuses a progress bar callback together with
        ``--trainer.enable_progress_bar false``, which benchmarks and tests pass.
        """
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        listed = config.get("callbacks") or []
        listed = listed if isinstance(listed, list) else [listed]
        # The callback groups (checkpoint, media, ...), less those a config set to null.
        groups = [
            self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys
        ]
        callbacks = [*listed, *(cb for cb in groups if cb is not None)]
        wanted = config.get("enable_progress_bar") is not False
        if wanted and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(RichProgressBar())
        return self._instantiate_trainer({**config, "callbacks": callbacks}, [])

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before anything reads it; ``predict`` must have one."""
        subcommand = self.config.get("subcommand")
        if subcommand:
            path = self.config[subcommand].get("ckpt_path")
            if path and str(path) not in CKPT_KEYWORDS:
                check_checkpoint(path)
            elif not path and subcommand == "predict":
                raise ConfigError(
                    "predict needs trained weights: pass --ckpt_path PATH (e.g. "
                    "checkpoints/demo/best.ckpt); without one it would report a random model"
                )
        model = self.config[subcommand].get("model") if subcommand else None
        own = {key: model.get(key) for key in EVALUATION_SETTINGS} if model else {}
        # Lightning rebuilds the model from the checkpoint's hyper-parameters, over this
        # command's: right for the architecture, but how to evaluate (test-time augmentation,
        # windows, ensemble members) is this command's choice, not the training run's.
        super()._parse_ckpt_path()
        for key, value in own.items():
            self.config[subcommand]["model"][key] = value

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a value their constructors reject is a ConfigError."""
        try:
            super().instantiate_classes()
        except UserError:
            raise
        except (ValueError, TypeError, MisconfigurationException) as error:
            # jsonargparse wraps a constructor's error in a page about union subtypes; the
            # constructor's own message, at the bottom of the chain, is the one to show.
            cause = root_cause(error)
            if isinstance(cause, UserError):
                raise cause from error
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
            raise ConfigError(f"invalid configuration: {reason}") from error

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a stop by SIGTERM/SIGINT becomes :class:`Interrupted` (exit 143/130).

        Lightning turns SIGTERM into an exception at the end of the current batch, which
        would end the process with status 0: a script running ``fit`` then ``test`` would go
        on to test a half-trained model.
        """
        with _sigint_as_sigterm(self.trainer) as received:
            try:
                super()._run_subcommand(subcommand)
            except SIGTERMException as stop:
                raise self._interrupted(subcommand, received) from stop
            except SystemExit as stop:
                # Lightning answers a KeyboardInterrupt with sys.exit(1).
                if received:
                    raise self._interrupted(subcommand, received) from stop
                raise
            except MisconfigurationException as error:
                raise ConfigError(f"invalid configuration: {error}") from error

    def _interrupted(self, subcommand: str, received: list[int]) -> Interrupted:
        signum = received[0] if received else signal.SIGTERM
        message = f"{subcommand} stopped by {signal.Signals(signum).name}"
        if subcommand == "fit":
            last = resume_checkpoint(self.trainer)
            message += f" in epoch {self.trainer.current_epoch}; " + (
                f"resume from the last finished epoch with --ckpt_path {last}"
                if last
                else "no epoch checkpoint was written, nothing to resume from"
            )
        return Interrupted(message, 128 + signum)

    def before_predict(self) -> None:
        """A ``PredictionWriter`` the user put in ``trainer.callbacks`` replaces the CLI's."""
        callbacks = self.trainer.callbacks
        writers = [cb for cb in callbacks if isinstance(cb, BasePredictionWriter)]
        if len(writers) > 1:
            cli_writer = self.config_init[self.subcommand]["prediction"]
            self.trainer.callbacks = [cb for cb in callbacks if cb is not cli_writer]

    #: The text ``--summary true`` asked for, printed by :func:`run` once W&B has closed its run
    #: (W&B prints its own run summary on closing; ours should be the last word).
    summary_text: str | None = None

    def after_test(self) -> None:
        """With ``--summary true``: what the model learned (:mod:`multitask_dr.summary`)."""
        config = self.config_init[self.subcommand]
        if not config.get("summary") or not self.trainer.is_global_zero:
            return
        configs = [getattr(path, "relative", path) for path in config.get("config") or []]
        self.summary_text = summarise_run(
            self.trainer.callback_metrics,
            checkpoint=config.get("ckpt_path"),
            run_dir=wandb_run_dir(self.trainer),
            configs=configs,
        )

    def predict(self, **kwargs: Any) -> Any:
        """``Trainer.predict`` keeping nothing in memory unless ``--return_predictions true``.

        The writer saves every batch; holding all lesion maps too would grow without bound.
        """
        if kwargs.get("return_predictions") is None:
            kwargs["return_predictions"] = False
        return self.trainer.predict(**kwargs)


def root_cause(error: BaseException) -> BaseException:
    """The first exception of the chain that ``error`` was raised from."""
    while (cause := error.__cause__ or error.__context__) is not None:
        error = cause
    return error


def resume_checkpoint(trainer: Trainer) -> str | None:
    """The checkpoint that follows every epoch: an unmonitored ``ModelCheckpoint``'s or ``last``."""
    callbacks = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    for callback in callbacks:
        if callback.monitor is None and callback.best_model_path:
            return callback.best_model_path
    return next((cb.last_model_path for cb in callbacks if cb.last_model_path), None)


@contextmanager
def _sigint_as_sigterm(trainer: Trainer | None) -> Iterator[list[int]]:
    """While a trainer runs, a first Ctrl-C stops it as SIGTERM does; a second one at once.

    Python's KeyboardInterrupt lands wherever the code is, half-way through an optimiser step
    or a checkpoint write included; SIGTERM's flag is checked between batches. Yields the
    signals received, for the exit status.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        running = trainer is not None and trainer.state.status == TrainerStatus.RUNNING
        # Lightning's SIGTERM handler is installed only while a stage runs (not during setup).
        if running and callable(signal.getsignal(signal.SIGTERM)) and len(received) == 1:
            print(
                "\nStopping at the end of this batch (Ctrl-C again to abort now)", file=sys.stderr
            )
            signal.raise_signal(signal.SIGTERM)
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def run(argv: list[str], from_command_line: bool) -> int:
    """Run a Lightning subcommand.

    Args:
        argv: Arguments without the program name (``--debug`` already removed).
        from_command_line: They came from ``sys.argv`` (then LightningCLI reads it, so it does
            not warn about arguments given twice).

    Returns:
        0 (errors and stops are raised as :class:`~multitask_dr.errors.UserError`).
    """
    if not BASE_CONFIG.is_file():
        # Every config in configs/ is an overlay on it: without it they would silently lose
        # their logger and checkpoints.
        raise ConfigError(f"{BASE_CONFIG} is missing (the configs' shared base)")
    check_network_keys(argv)
    default_wandb_mode()
    warnings.filterwarnings("ignore", message=AVERAGING_OUTSIDE_FIT)
    if from_command_line:
        sys.argv = [sys.argv[0], *argv]
    try:
        cli = MultiTaskCLI(
            MultiTaskDR,
            LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=WandbSaveConfig,
            save_config_kwargs={"overwrite": True},
            args=None if from_command_line else argv,
            parser_kwargs={
                "description": "Joint DR lesion segmentation and grading. Configs (in "
                f"{CONFIG_DIR}): {', '.join(config_names())}. Also: `multitask-dr synth "
                "--help` (synthetic data), `multitask-dr check-data --help` (dataset report). "
                + DEBUG_HINT,
            },
        )
    finally:
        finish_wandb_run()
    if cli.summary_text:
        print(f"\n{cli.summary_text}", flush=True)
    return 0


def check_network_keys(argv: list[str]) -> None:
    """Stop with the new name when a config or argument uses a flat network key.

    The network's settings moved under ``model.network``; jsonargparse alone would only answer
    "unrecognized arguments" after a page of usage.

    Raises:
        ConfigError: Naming the file (or the argument) and the key's new name.
    """
    names = NetworkConfig.field_names()
    for index, arg in enumerate(argv):
        key = arg.removeprefix("--").partition("=")[0]
        if key.startswith("model.") and key.removeprefix("model.") in names:
            raise ConfigError(f"--{key} is now --model.network.{key.removeprefix('model.')}")
        if arg == "--config" and index + 1 < len(argv):
            path = Path(argv[index + 1])
            try:
                model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
            except (OSError, yaml.YAMLError, AttributeError):
                continue  # jsonargparse reports unreadable configs itself
            flat = sorted(names & set(model if isinstance(model, dict) else ()))
            if flat:
                raise ConfigError(
                    f"model: {', '.join(flat)} belong under model.network now "
                    "(e.g. model: {network: {encoder: ...}}; docs/model.md)",
                    path=path,
                )
