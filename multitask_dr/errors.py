"""Errors the user can fix, shown by the command line as one line with no traceback.

:class:`UserError` is the root: :func:`multitask_dr.cli.main` prints any of them as
``multitask-dr: error: <message>`` and exits non-zero; ``--debug`` (or ``MULTITASK_DR_DEBUG=1``)
shows the traceback instead. Each message names the file it is about, so the user knows what to
fix without reading our code. This module imports nothing heavy: the command line loads it
before torch.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem in the user's input (data, config, checkpoint), not in our code.

    Args:
        message: What is wrong, in words a user can act on.
        path: The file or folder it is about; the message is then ``"<path>: <message>"``.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        super().__init__(message if path is None else f"{path}: {message}")


class ConfigError(UserError):
    """A configuration value the classes it configures reject."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or not one of ours."""


class Interrupted(UserError):
    """A command stopped by a signal (SIGTERM, SIGINT) after saving what could be saved.

    Args:
        message: What was stopped and what is left to resume from.
        exit_code: The process exit status (128 + the signal number, as shells report it).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
