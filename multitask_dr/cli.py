"""Command line: ``multitask-dr {fit,validate,test,predict,synth,check-data} ...``.

Also ``python -m multitask_dr``.

``fit``/``validate``/``test``/``predict`` are Lightning's CLI over :class:`MultiTaskDR` and any
datamodule of this package, configured by YAML files in ``configs/``. ``synth`` writes the
synthetic fundus datasets, ``check-data`` reports on a dataset.

``predict`` always has a :class:`~multitask_dr.predict.PredictionWriter` (options under
``prediction:``, e.g. ``--prediction.output_dir``) and keeps no predictions in memory.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any

# Set before the heavy imports read them: no update check, no accidental downloads.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from lightning import LightningDataModule, LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import (  # noqa: E402
    BasePredictionWriter,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402

from multitask_dr.datasets.problems import DataError  # noqa: E402
from multitask_dr.models.pretrained import PretrainedWeightsError  # noqa: E402
from multitask_dr.predict import PredictionWriter  # noqa: E402
from multitask_dr.tasks.multitask import MultiTaskDR  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
EXTRA_COMMANDS = ("synth", "check-data")


def config_names() -> list[str]:
    """Experiment configs under ``configs/`` (sweep files are for ``wandb sweep``, not the CLI)."""
    return sorted(
        p.relative_to(CONFIG_DIR).as_posix()
        for p in CONFIG_DIR.rglob("*.yaml")
        if "sweeps" not in p.relative_to(CONFIG_DIR).parts
    )


def wandb_logged_in() -> bool:
    """Whether W&B has credentials (an API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def default_wandb_mode() -> None:
    """Run W&B offline unless the user logged in or chose a mode (``WANDB_MODE``)."""
    if "WANDB_MODE" not in os.environ and not wandb_logged_in():
        os.environ["WANDB_MODE"] = "offline"


class WandbSaveConfig(SaveConfigCallback):
    """Save the fully resolved config where each run can find it.

    With a :class:`WandbLogger` the config goes into the run's own files folder (uploaded with
    the run, never clashing with another run) and into ``run.config``, so W&B shows every
    setting, not only the model's hyper-parameters. Other loggers get Lightning's behaviour
    (``config.yaml`` in the log dir, overwritten); with no logger nothing is written.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Write the config once, on rank zero."""
        if not trainer.loggers:
            # No run to attach it to: Lightning would drop config.yaml into the working folder.
            return
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers:
            super().setup(trainer, pl_module, stage)
            return
        if self.already_saved or not trainer.is_global_zero:
            return
        run = wandb_loggers[0].experiment
        if getattr(run, "disabled", False):  # WANDB_MODE=disabled: write nothing anywhere
            self.already_saved = True
            return
        self.parser.save(
            self.config,
            os.path.join(run.dir, self.config_filename),
            skip_none=False,
            overwrite=True,
            multifile=False,
        )
        run.config.update(flatten(self.config.as_dict()), allow_val_change=True)
        self.already_saved = True


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (W&B filters and sorts on flat keys)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = (
                value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
            )
    return flat


class MultiTaskCLI(LightningCLI):
    """LightningCLI with the project's task and any of its datamodules."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """List the configs in ``--help``; add the prediction writer's options."""
        configs = config_names()
        if configs:
            parser.description = (parser.description or "") + (
                f"\n\nConfigs in {CONFIG_DIR}: " + ", ".join(configs)
            )
        # Attached in every subcommand (it acts only in predict), so `predict` never runs
        # without writing its results and a run's saved config says where they would go.
        parser.add_lightning_class_args(PredictionWriter, "prediction")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with a Rich progress bar unless one is configured or bars are off.

        Added here rather than listed in every config: Lightning refuses a progress bar
        callback together with ``--trainer.enable_progress_bar false``, which benchmarks and
        tests pass.
        """
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        wanted = config.get("enable_progress_bar") is not False
        if wanted and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            config["callbacks"] = [*callbacks, RichProgressBar()]
        return super().instantiate_trainer(**kwargs)

    def before_predict(self) -> None:
        """A ``PredictionWriter`` the user put in ``trainer.callbacks`` replaces the CLI's."""
        callbacks = self.trainer.callbacks
        writers = [cb for cb in callbacks if isinstance(cb, BasePredictionWriter)]
        if len(writers) > 1:
            cli_writer = self.config_init[self.subcommand]["prediction"]
            self.trainer.callbacks = [cb for cb in callbacks if cb is not cli_writer]

    def predict(self, **kwargs: Any) -> Any:
        """``Trainer.predict`` keeping nothing in memory unless ``--return_predictions true``.

        The writer saves every batch; holding all lesion maps too would grow without bound.
        """
        if kwargs.get("return_predictions") is None:
            kwargs["return_predictions"] = False
        return self.trainer.predict(**kwargs)


def run_synth(args: list[str]) -> int:
    """``multitask-dr synth``: write the synthetic datasets."""
    from multitask_dr.datasets.synthetic import main as synth_main

    return synth_main(args)


def run_check_data(args: list[str]) -> int:
    """``multitask-dr check-data``: counts, sizes, duplicates and problems of a dataset."""
    from multitask_dr.datasets.report import main as report_main

    return report_main(args)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``multitask-dr``.

    Args:
        args: Command-line arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0, or 2 when the data cannot be used (missing root or file,
        unreadable folder) or pretrained weights cannot be loaded (package missing), with the
        reason printed instead of a traceback.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        return {"synth": run_synth, "check-data": run_check_data}[argv[0]](argv[1:])
    default_wandb_mode()
    try:
        MultiTaskCLI(
            MultiTaskDR,
            LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=WandbSaveConfig,
            save_config_kwargs={"overwrite": True},
            args=None if args is None else argv,  # None: LightningCLI reads sys.argv itself
            parser_kwargs={
                "description": "Joint DR lesion segmentation and grading. Configs (in "
                f"{CONFIG_DIR}): {', '.join(config_names())}. Also: `multitask-dr synth "
                "--help` (synthetic data), `multitask-dr check-data --help` (dataset report).",
            },
        )
    except (DataError, PretrainedWeightsError) as error:
        # A wrong path in a config or a missing extra is the user's to fix: say which, not
        # where in our code.
        print(f"multitask-dr: error: {error}", file=sys.stderr)
        return 2
    finally:
        finish_wandb_run()
    return 0


def finish_wandb_run() -> None:
    """Close the W&B run, so the next in-process command (tests, notebooks) starts afresh.

    ``wandb.teardown`` also waits for W&B's service process to write what is still queued (a
    model artifact is recorded after ``finish`` returns) and drops the settings W&B cached at
    its first run, so a later command in the same process sees a changed ``WANDB_MODE``.
    """
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
        wandb.teardown()


if __name__ == "__main__":
    raise SystemExit(main())
