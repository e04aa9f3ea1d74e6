"""Callbacks for the W&B dashboard: media per evaluation epoch and the best model as an artifact.

:class:`~multitask_dr.callbacks.media.WandbMedia` is the CLI's ``media`` group, which
``configs/base.yaml`` turns on (``class_path: multitask_dr.callbacks.WandbMedia``); its parts
live in :mod:`~multitask_dr.callbacks.sources` (what it reads of the run and its datamodule),
:mod:`~multitask_dr.callbacks.figures` (PNG renderings) and
:mod:`~multitask_dr.callbacks.artifact` (the model artifact).
"""

from multitask_dr.callbacks.media import WandbMedia

__all__ = ["WandbMedia"]
