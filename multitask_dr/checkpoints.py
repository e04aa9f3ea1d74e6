"""Checking a checkpoint before Lightning reads it, so a bad one is one line naming the file.

Lightning's own failures on a bad ``--ckpt_path`` are tracebacks, and for a truncated file or
a file that is not a checkpoint they do not say which file. :func:`check_checkpoint` tells
apart a missing file, a folder, an empty, truncated or foreign file and a PyTorch file that is
not a Lightning checkpoint. It reads the file the way Lightning will (``weights_only``), but
memory-maps the tensors, so checking a large checkpoint costs little.

:func:`upgrade_checkpoint` brings a checkpoint of an earlier layout of the task's
hyper-parameters to the current one, so ``MultiTaskDR.load_from_checkpoint`` reads both.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from multitask_dr.errors import CheckpointError

#: Keys every Lightning checkpoint has.
LIGHTNING_KEYS = ("state_dict", "pytorch-lightning_version")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load a Lightning checkpoint (tensors memory-mapped) or say in one line why it cannot be.

    Args:
        path: The ``.ckpt`` file.
        what: How the message calls it (``"checkpoint"``, ``"ensemble checkpoint"``).

    Returns:
        The checkpoint dictionary (tensors memory-mapped for zip-format files).

    Raises:
        CheckpointError: Naming the file: missing, a folder, empty, not a PyTorch file,
            truncated or damaged, or not a Lightning checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} not found", path=path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.ckpt"))
        hint = f"; it holds {', '.join(inside[:5])}" if inside else ""
        raise CheckpointError(f"is a folder, not a {what} file{hint}", path=path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"empty file (0 bytes), not a {what}", path=path)
    with path.open("rb") as handle:
        head = handle.read(8)
    zipped = head.startswith(b"PK")
    if zipped:
        try:
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile as error:
            raise CheckpointError(
                f"truncated or damaged {what} (its zip archive is unreadable: {error})", path=path
            ) from error
    elif not head.startswith(b"\x80"):  # the legacy format is a bare pickle
        raise CheckpointError(
            f"not a PyTorch {what} (torch.save writes a zip archive; this starts with {head!r})",
            path=path,
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"truncated or damaged {what}: torch.load failed ({_first_line(error)})", path=path
        ) from error
    if not isinstance(checkpoint, dict) or not all(key in checkpoint for key in LIGHTNING_KEYS):
        found = (
            f"keys {sorted(map(str, checkpoint))[:6]}"
            if isinstance(checkpoint, dict)
            else f"a {type(checkpoint).__name__}"
        )
        raise CheckpointError(
            f"a PyTorch file but not a Lightning {what} (it holds {found}; expected "
            f"{' and '.join(LIGHTNING_KEYS)}, as ModelCheckpoint writes)",
            path=path,
        )
    return checkpoint


def nest_network_hyperparameters(
    hparams: dict[str, Any], network_fields: Collection[str]
) -> dict[str, Any] | None:
    """Hyper-parameters of a checkpoint that predates ``model.network``, with it filled in.

    Checkpoints written before the network became one setting hold its fields (``encoder``,
    ``conditioning``, ...) flat beside the task's own; the weights' names did not change.

    Args:
        hparams: A checkpoint's ``hyper_parameters``.
        network_fields: The fields of :class:`~multitask_dr.models.network.NetworkConfig`.

    Returns:
        The hyper-parameters with those fields moved under ``network``, or ``None`` when there
        is nothing to move (a current checkpoint).
    """
    flat = [key for key in hparams if key in network_fields]
    if not flat or "network" in hparams:
        return None
    nested = {key: value for key, value in hparams.items() if key not in network_fields}
    return nested | {"network": {key: hparams[key] for key in flat}}


def upgrade_checkpoint(path: str | Path, network_fields: Collection[str]) -> io.BytesIO | None:
    """A current-format copy (in memory) of an older checkpoint, or ``None`` if it is current.

    Args:
        path: The ``.ckpt`` file (checked by :func:`check_checkpoint`).
        network_fields: The fields of :class:`~multitask_dr.models.network.NetworkConfig`.

    Raises:
        CheckpointError: When the file is not a readable Lightning checkpoint.
    """
    hparams = check_checkpoint(path).get("hyper_parameters") or {}
    nested = nest_network_hyperparameters(dict(hparams), network_fields)
    if nested is None:
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"] = nested
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return buffer
