"""Callbacks that interrupt a ``fit`` at a known point, for the resume tests.

They are importable by a ``fit`` started in a subprocess (``PYTHONPATH`` = the repository), so
the tests stop real runs where they choose instead of racing a clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer


class StopAfterEpoch(Callback):
    """End ``fit`` after ``epoch`` as a job that ran out of time would (``should_stop``).

    Args:
        epoch: The last epoch (0-based) to train.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Ask the trainer to stop once this epoch is done."""
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class WaitForSignal(Callback):
    """After the first batch of ``epoch``, touch ``ready`` and wait for SIGTERM/SIGINT.

    The test sends the signal once ``ready`` exists, so it lands mid-epoch every time.

    Args:
        epoch: The epoch (0-based) to hold.
        ready: File created when the run waits.
        patience: Seconds to wait before giving up (the test has failed by then).
    """

    def __init__(self, epoch: int, ready: str, patience: float = 600.0) -> None:
        self.epoch = epoch
        self.ready = Path(ready)
        self.patience = patience

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Hold the run in place until a stop is requested."""
        if trainer.current_epoch != self.epoch or batch_idx != 0:
            return
        self.ready.touch()
        deadline = time.monotonic() + self.patience
        while not trainer.received_sigterm:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no signal within {self.patience} s")
            time.sleep(0.05)
