"""A short account of a ``test`` run: what the model learned and where its outputs are.

``multitask-dr test ... --summary true`` prints it after Lightning's table of every metric
(``scripts/demo.sh`` does), so a newcomer sees the few numbers that matter, the checkpoint and
the W&B run it came from, and the commands to try next. The text is built from the metrics the
task logged (:meth:`~lightning.pytorch.Trainer.test`'s ``callback_metrics``), not parsed from
printed output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from multitask_dr.lesions import LESIONS

#: Attribution notebook the summary points to once a model exists.
ATTRIBUTION_NOTEBOOK = "notebooks/02_lesion_grade_attribution.ipynb"


def _number(metrics: Mapping[str, object], key: str) -> float | None:
    """``metrics[key]`` as a float (tensors included); ``None`` when absent or NaN."""
    value = metrics.get(key)
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def summarise_run(
    metrics: Mapping[str, object],
    checkpoint: str | Path | None = None,
    run_dir: str | Path | None = None,
    configs: Sequence[str | Path] = (),
    stage: str = "test",
) -> str:
    """The summary text of one evaluation run.

    Args:
        metrics: Logged metric values by key (floats or 0-d tensors), e.g. ``test/seg/aupr_EX``.
        checkpoint: The checkpoint that was evaluated.
        run_dir: The W&B run folder of this evaluation (``None``: no W&B run was written).
        configs: The ``--config`` files of the run, repeated in the suggested next commands.
        stage: Metric key prefix (``test`` or ``val``).

    Returns:
        A few lines: lesion mAUPR with per-lesion AUPR, grade AUC/QWK/accuracy (each part only
        when the run scored it), where the outputs are, and what to run next.
    """
    lines = [f"What the model learned ({stage} split):"]
    mean = _number(metrics, f"{stage}/seg/aupr_mean")
    if mean is not None:
        per_lesion = "  ".join(
            f"{lesion} {_fmt(_number(metrics, f'{stage}/seg/aupr_{lesion}'))}" for lesion in LESIONS
        )
        lines.append(f"  lesions   mAUPR {mean:.2f}  ({per_lesion})")
    grade = {name: _number(metrics, f"{stage}/grade/{name}") for name in ("auc", "qwk", "acc")}
    if any(value is not None for value in grade.values()):
        lines.append(
            f"  grades    AUC {_fmt(grade['auc'])}  QWK {_fmt(grade['qwk'])}"
            f"  accuracy {_fmt(grade['acc'])}"
        )
    if len(lines) == 1:
        lines.append("  (no lesion or grade metric was logged)")
    if checkpoint is not None:
        lines.append(f"  checkpoint  {checkpoint}")
    if run_dir is not None:
        lines.append(f"  W&B run     {run_dir}   (the fit's run sits beside it)")
        if Path(run_dir).name.startswith("offline-run-"):
            lines.append(f"  upload      wandb sync {run_dir}   (after wandb login)")
    config_args = " ".join(f"--config {c}" for c in configs) or "--config CONFIG"
    ckpt_arg = f"--ckpt_path {checkpoint}" if checkpoint is not None else "--ckpt_path CKPT"
    lines += [
        "Next:",
        f"  multitask-dr predict {config_args} {ckpt_arg} --data.predict_dir PHOTOS/",
        f"  {ATTRIBUTION_NOTEBOOK}  (open in Jupyter): why each grade, lesion by lesion",
        "  multitask-dr fit --help   (every option), mkdocs serve   (the docs site)",
    ]
    return "\n".join(lines)
