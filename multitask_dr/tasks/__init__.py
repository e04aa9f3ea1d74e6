"""The task, :class:`~multitask_dr.tasks.multitask.MultiTaskDR`, and its parts.

``multitask`` (the LightningModule), ``batches`` (what a batch holds, its sources),
``losses``, ``regularisation`` (mixup, teacher forcing), ``inference`` (sliding windows,
test-time augmentation, ensembles), ``metrics`` (the metric rules, ``val/score``), ``logging``
and ``optimisation``.
"""
