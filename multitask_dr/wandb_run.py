"""The W&B side of the CLI: offline by default, the resolved config in each run, run folders.

:func:`default_wandb_mode` runs W&B offline unless the user logged in or chose a mode;
:class:`WandbSaveConfig` saves the fully resolved config into the run; :func:`wandb_run_dir`
and :func:`finish_wandb_run` find and close the run after a command.
"""

from __future__ import annotations

import netrc
import os
import sys
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger


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


def wandb_run_dir(trainer: Trainer) -> str | None:
    """The folder of the trainer's W&B run (``None`` without one, or with W&B disabled)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            if getattr(run, "disabled", False) or not getattr(run, "dir", None):
                return None
            # run.dir is the run's files/ folder; the run folder is what `wandb sync` takes.
            return os.path.relpath(os.path.dirname(run.dir))
    return None


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
