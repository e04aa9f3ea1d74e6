"""RetinaMNIST grading benchmark (issue 4): the real CLI, several seeds, published rows beside.

For each seed it runs ``multitask-dr fit`` on ``configs/retinamnist.yaml`` in-process (the seed
goes to ``seed_everything`` and to the datamodule), selects the checkpoint on the validation
split (the config's ``ModelCheckpoint`` monitor), re-validates that checkpoint, and touches the
test split once (``multitask-dr test --ckpt_path``). Metrics are read back from a CSV logger.
``--members K`` makes each seed's run a deep ensemble of ``K`` models (seeds ``K*seed`` to
``K*seed+K-1``) evaluated through ``model.ensemble_checkpoints``; ``--reuse`` keeps models already
fitted in ``--work`` with the same config.
It prints per-seed results and mean ± std of test ACC / AUC / QWK next to the published
MedMNIST results (a Markdown table).

``--val-only`` never opens the test split: use it for every choice (settings, epochs) and run
the test once with the chosen config. ``--set KEY=VALUE`` overrides a dotted config key
(``model.lr=0.002``, ``data.init_args.image_size=32``; the value is read as YAML) and
``--set KEY+=VALUE`` appends to a list (``trainer.callbacks+={class_path: ...}``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_retinamnist.py [--seeds 0 1 2] [--set ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.cli_runs import (  # noqa: E402
    apply_overrides,
    checkpoint_callback,
    load_configs,
    mean_std,
    read_rows,
    route_outputs,
    same_run,
    set_key,
)
from multitask_dr.cli import main as cli_main  # noqa: E402

# MedMNIST v2 (Yang et al., Sci. Data 2023) table and MedMNIST+ (Doerrich et al., 2024).
PUBLISHED = (
    ("ResNet-18 (28), MedMNIST v2", 0.524, 0.717),
    ("ResNet-50 (28), MedMNIST v2", 0.528, 0.726),
    ("Google AutoML Vision, MedMNIST v2", 0.531, 0.750),
    ("VGG16 pretrained (28), best 28 px in MedMNIST+", 0.542, 0.754),
)
METRICS = ("acc", "auc", "qwk")


def seed_config(base: dict[str, Any], seed: int, out: Path, overrides: list[str]) -> dict[str, Any]:
    """The experiment config for one seed: CSV logging and checkpoints under ``out``."""
    config = apply_overrides(base, overrides)
    config["seed_everything"] = seed
    set_key(config, "data.init_args.seed", seed)
    route_outputs(config, out)
    return config


def last_values(rows: list[dict[str, float]], prefix: str) -> dict[str, float]:
    """The last logged ``{prefix}/grade/{acc,auc,qwk}``."""
    result = {}
    for name in METRICS:
        values = [r[f"{prefix}/grade/{name}"] for r in rows if f"{prefix}/grade/{name}" in r]
        result[name] = values[-1] if values else math.nan
    return result


class Member(NamedTuple):
    """One fitted model: config file, selected checkpoint, fit seconds, validation curve."""

    config: Path
    checkpoint: Path
    fit_seconds: float
    curve: list[dict[str, float]]


def fit_member(base: dict[str, Any], seed: int, args: argparse.Namespace, work: Path) -> Member:
    """Fit one model with ``seed``.

    Returns:
        The member; its curve holds the per-epoch validation rows (from
        ``work/seed{seed}/fit/version_0/metrics.csv``).

    With ``--reuse`` a model whose checkpoint and recorded fit time are already in ``work`` is
    not trained again (ensembles of different sizes share members).
    """
    out = work / f"seed{seed}"
    config = seed_config(base, seed, out, args.set)
    path = work / f"seed{seed}.yaml"
    ckpt = out / "ckpt" / "best.ckpt"
    timing = out / "fit_seconds.json"
    if args.reuse and ckpt.exists() and timing.exists():
        if not same_run(path, config):
            raise SystemExit(f"--reuse: {path} was written with other settings")
    else:
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        start = time.perf_counter()
        cli_main(["fit", "--config", str(path)])
        timing.write_text(json.dumps(time.perf_counter() - start))
    monitor = checkpoint_callback(config)["init_args"]["monitor"]
    rows = read_rows(out / "fit" / "version_0" / "metrics.csv")
    curve = [r for r in rows if f"val/grade/{METRICS[0]}" in r]
    if not any(monitor in r for r in curve):
        raise RuntimeError(f"the checkpoint monitor {monitor!r} was never logged")
    return Member(path, ckpt, float(json.loads(timing.read_text())), curve)


def run_seed(
    base: dict[str, Any], seed: int, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Fit (``--members`` models), select on validation, re-validate and (unless val-only) test.

    With ``--members K`` the run for ``seed`` is a deep ensemble of the models with seeds
    ``K * seed ... K * seed + K - 1``, evaluated through ``model.ensemble_checkpoints``
    (probabilities averaged); its fit time is the sum of the members'.
    """
    seeds = [args.members * seed + j for j in range(args.members)]
    members = [fit_member(base, member_seed, args, work) for member_seed in seeds]
    path, ckpt, _, curve = members[0]
    others = [m.checkpoint for m in members[1:]]
    out = ckpt.parents[1]  # the first member's folder: evaluation logs go beside its fit
    suffix = "" if args.members == 1 else f"_ensemble{args.members}"

    def evaluate(stage: str) -> tuple[dict[str, float], float]:
        begin = time.perf_counter()
        extra = ["--model.ensemble_checkpoints", json.dumps([str(o) for o in others])]
        cli_main(
            [stage, "--config", str(path), "--ckpt_path", str(ckpt)]
            + ["--trainer.logger.init_args.name", stage + suffix]
            + (extra if others else [])
        )
        seconds = time.perf_counter() - begin
        rows = read_rows(out / (stage + suffix) / "version_0" / "metrics.csv")
        return last_values(rows, "val" if stage == "validate" else "test"), seconds

    val, _ = evaluate("validate")
    result: dict[str, Any] = {
        "seed": seed,
        "members": seeds,
        "best_epoch": [
            int(torch.load(m.checkpoint, map_location="cpu", weights_only=False)["epoch"])
            for m in members
        ],
        "fit_s": sum(m.fit_seconds for m in members),
        "val": val,
        # The first member's validation curve (one row per epoch).
        "val_curve": [{k: r[f"val/grade/{k}"] for k in METRICS} for r in curve],
    }
    if not args.val_only:
        result["test"], result["test_s"] = evaluate("test")
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace, config: dict[str, Any]) -> None:
    """Print the per-seed table and the comparison with the published rows."""
    model, data = config["model"].get("network", {}), config["data"]["init_args"]
    start = f"from {model['encoder_weights']}" if model.get("encoder_weights") else "from scratch"
    configs = " + ".join(path.name for path in args.config)
    print(
        f"\nmachine: {platform.machine()} ({platform.processor() or 'cpu'}), "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; config "
        f"{configs} {' '.join(args.set)}; {model.get('encoder')} {start}, "
        f"{data.get('size')} px read, {data.get('image_size')} px fed; seeds {args.seeds}\n"
    )
    print(
        "| seed | best epoch | val ACC | val AUC | val QWK | test ACC | test AUC | test QWK "
        "| fit s | test s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        test = r.get("test", dict.fromkeys(METRICS, math.nan))
        cells = [f"{r['val'][k]:.3f}" for k in METRICS] + [f"{test[k]:.3f}" for k in METRICS]
        print(
            f"| {r['seed']} | {', '.join(map(str, r['best_epoch']))} | "
            + " | ".join(cells)
            + f" | {r['fit_s']:.0f} | {r.get('test_s', math.nan):.0f} |"
        )
    stage = "val" if args.val_only else "test"
    print(f"\n| model (RetinaMNIST, {stage} split) | ACC | AUC | QWK |")
    print("|---|---|---|---|")
    if not args.val_only:
        for name, acc, auc in PUBLISHED:
            print(f"| {name} | {acc:.3f} | {auc:.3f} | not reported |")
    cells = [mean_std([r[stage][k] for r in results]) for k in METRICS]
    label = args.label or (
        f"multitask_dr {model.get('encoder')}, {len(results)} seeds"
        + (f", ensembles of {args.members}" if args.members > 1 else "")
    )
    print(f"| **{label}** | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        help="config file; repeat to put overlays on a base, as the CLI does "
        "(default: configs/retinamnist.yaml)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--val-only", action="store_true", help="never touch the test split")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--label", help="row name in the table")
    parser.add_argument(
        "--members", type=int, default=1, help="models per seed, probabilities averaged"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep models already fitted in --work (same config)"
    )
    parser.add_argument("--work", type=Path, help="keep logs/checkpoints here (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the per-seed results here")
    args = parser.parse_args()
    # One thread: on the shared 2-core machine two OpenMP threads ran many times slower.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sys.argv.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    args.config = args.config or [REPO / "configs" / "retinamnist.yaml"]
    base = load_configs(args.config)
    os.chdir(REPO)  # the config's data root is relative to the repository

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            result = run_seed(base, seed, args, work)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "val_curve"}), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    report(results, args, seed_config(base, 0, Path("."), args.set))


if __name__ == "__main__":
    main()
