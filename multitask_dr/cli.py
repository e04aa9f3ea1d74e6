"""Command line: ``multitask-dr {fit,validate,test,predict,synth,check-data} ...``.

Also ``python -m multitask_dr``.

``fit``/``validate``/``test``/``predict`` are Lightning's CLI over :class:`MultiTaskDR` and any
datamodule of this package, configured by YAML files in ``configs/``
(:mod:`multitask_dr.lightning_cli`, imported only for them). ``synth`` writes the synthetic
fundus datasets, ``check-data`` reports on a dataset.

``predict`` always has a :class:`~multitask_dr.predict.PredictionWriter` (options under
``prediction:``, e.g. ``--prediction.output_dir``) and keeps no predictions in memory.

This is the one place where errors meet the user: any
:class:`~multitask_dr.errors.UserError` (bad data, config value or checkpoint) is printed as
one line naming the file, with exit status 2; a stop by a signal exits 128 + its number.
``--debug`` anywhere on the line (or ``MULTITASK_DR_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Set before the heavy imports read them: no update check, no accidental downloads.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from multitask_dr.errors import Interrupted, UserError  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Read by ``fit``/``validate``/``test``/``predict`` before any ``--config``.
BASE_CONFIG = CONFIG_DIR / "base.yaml"
EXTRA_COMMANDS = ("synth", "check-data")
DEBUG_FLAG = "--debug"
DEBUG_ENV = "MULTITASK_DR_DEBUG"
DEBUG_HINT = f"Errors are one line; add {DEBUG_FLAG} (or set {DEBUG_ENV}=1) for the traceback."

#: Exit status for a user error (as argparse uses for bad arguments).
USER_ERROR = 2


def config_names() -> list[str]:
    """Experiments and overlays under ``configs/``.

    Not the base (always applied) nor sweep files (for ``wandb sweep``, not the CLI).
    """
    return sorted(
        p.relative_to(CONFIG_DIR).as_posix()
        for p in CONFIG_DIR.rglob("*.yaml")
        if "sweeps" not in p.relative_to(CONFIG_DIR).parts and p != BASE_CONFIG
    )


def run_synth(args: list[str]) -> int:
    """``multitask-dr synth``: write the synthetic datasets."""
    from multitask_dr.datasets.synthetic.cli import main as synth_main

    return synth_main(args)


def run_check_data(args: list[str]) -> int:
    """``multitask-dr check-data``: counts, sizes, duplicates and problems of a dataset."""
    from multitask_dr.datasets.report import main as report_main

    return report_main(args)


def debug_requested(argv: list[str]) -> bool:
    """Whether tracebacks were asked for (``--debug`` or ``MULTITASK_DR_DEBUG``)."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def main(args: list[str] | None = None) -> int:
    """Entry point of ``multitask-dr``.

    Args:
        args: Command-line arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0; 1 when ``check-data`` found problems; 2 for an error in the
        data, the configuration or a checkpoint (printed as one line naming the file);
        143/130 when stopped by SIGTERM/SIGINT.
    """
    argv = list(sys.argv[1:] if args is None else args)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            status = {"synth": run_synth, "check-data": run_check_data}[argv[0]](argv[1:])
        else:
            from multitask_dr.lightning_cli import run

            status = run(argv, from_command_line=args is None)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
    except Interrupted as stop:
        if debug:
            raise
        print(f"multitask-dr: {stop}", file=sys.stderr)
        return stop.exit_code
    except UserError as error:
        if debug:
            raise
        one_line = " ".join(str(error).split("\n"))  # a message from a library may wrap
        print(f"multitask-dr: error: {one_line}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print("multitask-dr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `multitask-dr check-data ... | head`: the reader has gone; nothing more to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
