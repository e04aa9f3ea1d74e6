"""Real-lesion benchmark: HEI-MED exudates in-dataset, the IDRiD sample cross-dataset.

For each variant (``pretrained``: the config as it is, EfficientNet-Lite0 from ImageNet;
``scratch``: the same with ``model.network.encoder_weights=null``) and each seed it runs
``multitask-dr fit`` on ``configs/real_lesions.yaml`` in-process (the seed goes to
``seed_everything`` and to every lesion source; the sources' ``split_seed`` stays fixed, so every
run is scored on the same test photographs), selects the checkpoint on validation (the config's
monitor, ``val/seg/heimed/aupr_EX``) and touches the test splits once (``multitask-dr test
--ckpt_path``). It prints per run and as mean ± std: HEI-MED test EX AUPR and Dice, and the IDRiD
sample's test AUPR per lesion (another camera and population: cross-dataset).

``--val-only`` never opens the test splits: use it for every choice. ``--reuse-fits`` then tests
the runs fitted in ``--work`` without fitting them again, if their fit config trains what this
run's would (compared as the CLI composes both, so a default spelt out in one counts as left out
in the other); each run's test splits are read once: a second test of the same run stops.
``--ensemble`` also tests the deep ensemble of each variant's seeds (probabilities averaged over
the selected checkpoints). ``--set KEY=VALUE``
overrides a dotted config key (value read as YAML; a number indexes a list), e.g.
``trainer.max_epochs=10`` or ``data.init_args.segmentation.0.init_args.patch_size=288``;
``--eval-set KEY=VALUE`` overrides it for the test only, e.g. ``model.lesion_tta=flips``.
``--test-name NAME`` names each run's test folder (default ``test``): an evaluation set-up
chosen on validation after a run was tested reads the test splits once under its own name.

With ``--config configs/real_lesions.yaml --config configs/joint_real.yaml`` the run is joint
(RetinaMNIST grades beside the lesion sources; grade AUC/QWK/ACC columns filled). Grading alone
on the same budget: that stack with ``--set 'data=<the grading entry>'`` and ``--set
checkpoint.init_args.monitor=val/grade/qwk`` (the docs' benchmarks page has the exact command).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_real_lesions.py [--seeds 0 1 2] [--variants ...]
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
from typing import Any

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
    lesion_sources,
    load_configs,
    mean_std,
    read_rows,
    route_outputs,
    same_run,
)
from multitask_dr.cli import main as cli_main  # noqa: E402
from multitask_dr.lesions import LESIONS  # noqa: E402
from multitask_dr.tasks.multitask import EVALUATION_SETTINGS  # noqa: E402

#: Variant -> overrides on the config.
VARIANTS: dict[str, list[str]] = {
    "pretrained": [],
    "scratch": ["model.network.encoder_weights=null"],
}
#: Reported columns: (label, metric key in the test logs).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("HEI-MED EX AUPR", "test/seg/heimed/aupr_EX"),
    ("HEI-MED EX Dice", "test/seg/heimed/dice_EX"),
    *((f"IDRiD {lesion} AUPR", f"test/seg/idrid/aupr_{lesion}") for lesion in LESIONS),
    # With a grading source (configs/joint_real.yaml, or one alone): RetinaMNIST test.
    ("grade AUC", "test/grade/auc"),
    ("grade QWK", "test/grade/qwk"),
    ("grade ACC", "test/grade/acc"),
)


def data_sources(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every datamodule entry that takes a ``seed``: the lesion sources and the grading one,
    or the data entry itself when it is not a joint datamodule."""
    data = config["data"]
    if not data["class_path"].endswith("JointDataModule"):
        return [data]
    grading = data.get("init_args", {}).get("grading")
    return lesion_sources(config) + ([grading] if grading else [])


def run_config(base: dict[str, Any], variant: str, seed: int, extra: list[str], out: Path) -> Any:
    """The config of one run: the variant's overrides, ``seed`` everywhere, outputs in ``out``."""
    config = apply_overrides(base, VARIANTS[variant] + extra)
    config["seed_everything"] = seed
    for source in data_sources(config):
        source.setdefault("init_args", {})["seed"] = seed
    route_outputs(config, out)
    return config


def run_paths(work: Path, variant: str, seed: int) -> tuple[Path, Path]:
    """A run's output folder and its fit config in ``work``."""
    return work / f"{variant}-seed{seed}", work / f"{variant}-seed{seed}.yaml"


def fit_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the model's evaluation-only settings, which a fit never reads."""
    model = {k: v for k, v in config.get("model", {}).items() if k not in EVALUATION_SETTINGS}
    return config | {"model": model}


def trains_the_same(saved: Path, config: dict[str, Any]) -> bool:
    """Whether the fit config ``saved`` trains what ``config`` would (evaluation-only model
    settings aside), as the CLI composes them (``cli_runs.same_run``)."""
    return same_run(saved, config, fit_settings)


def last_logged(rows: list[dict[str, float]], key: str) -> float:
    """The last value of ``key`` in a CSV log (NaN when never logged)."""
    values = [row[key] for row in rows if key in row]
    return values[-1] if values else math.nan


def run(base: dict[str, Any], variant: str, seed: int, args: argparse.Namespace, work: Path):
    """Fit one model, select on validation and (unless ``--val-only``) test it once."""
    out, path = run_paths(work, variant, seed)
    config = run_config(base, variant, seed, args.set, out)
    fitted = out / "fit.json"
    if args.reuse_fits and fitted.exists() and path.exists():
        # The same run fitted before (e.g. under --val-only): test it without fitting again.
        if not trains_the_same(path, config):
            # A command-line mistake, not a fault: one line, no traceback.
            raise SystemExit(f"{path} differs from this run's config: fit it again")
        fit_seconds = json.loads(fitted.read_text())["fit_s"]
    else:
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        start = time.perf_counter()
        cli_main(["fit", "--config", str(path)])
        fit_seconds = time.perf_counter() - start
        fitted.write_text(json.dumps({"fit_s": fit_seconds}))
    monitor = checkpoint_callback(config)["init_args"]["monitor"]
    fit_rows = read_rows(out / "fit" / "version_0" / "metrics.csv")
    curve = [row[monitor] for row in fit_rows if monitor in row]
    if not curve:
        raise RuntimeError(f"the checkpoint monitor {monitor!r} was never logged")
    ckpt = out / "ckpt" / "best.ckpt"
    result: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "best_epoch": int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]),
        "val_monitor": max(v for v in curve if not math.isnan(v)),
        "val_curve": curve,
        "fit_s": fit_seconds,
    }
    if not args.val_only:
        tested = evaluation_config(config, path, args.eval_set, args.test_name)
        result["test"] = test(tested, ckpt, out / args.test_name)
    return result


def evaluation_config(config: dict[str, Any], path: Path, overrides: list[str], name: str) -> Path:
    """The config that tests a run: its fit config, with ``overrides`` (``--eval-set``).

    Written beside the fit config as ``<run>-<name>.yaml`` (``name``: the test folder's).
    """
    if not overrides:
        return path
    tested = path.with_name(f"{path.stem}-{name}.yaml")
    tested.write_text(yaml.safe_dump(apply_overrides(config, overrides), sort_keys=False))
    return tested


def test(config: Path, ckpt: Path, out: Path, members: list[Path] | None = None) -> dict:
    """Read the test splits once with ``ckpt`` (and ensemble ``members``): the columns."""
    if out.exists():
        raise SystemExit(f"{out} exists: this test split was read before, keep that result")
    command = ["test", "--config", str(config), "--ckpt_path", str(ckpt)]
    command += ["--trainer.logger.init_args.save_dir", str(out.parent)]
    command += ["--trainer.logger.init_args.name", out.name]
    if members:
        command += ["--model.ensemble_checkpoints", json.dumps([str(m) for m in members])]
    cli_main(command)
    rows = read_rows(out / "version_0" / "metrics.csv")
    return {key: last_logged(rows, key) for _, key in COLUMNS}


def ensemble(
    results: list[dict[str, Any]], work: Path, overrides: list[str], name: str
) -> dict[str, Any]:
    """Test the deep ensemble of the runs' selected checkpoints (the first run's config)."""
    first = results[0]
    runs = [run_paths(work, r["variant"], r["seed"]) for r in results]
    ckpts = [out / "ckpt" / "best.ckpt" for out, _ in runs]
    path = runs[0][1]
    config = evaluation_config(yaml.safe_load(path.read_text()), path, overrides, name)
    seeds = "+".join(str(r["seed"]) for r in results)
    out = work / f"ensemble-{first['variant']}-seeds{seeds}"
    return {
        "variant": f"ensemble of seeds {seeds}",
        "seed": "-",
        "best_epoch": "-",
        "val_monitor": math.nan,
        "fit_s": sum(r["fit_s"] for r in results),
        "test": test(config, ckpts[0], out / name, ckpts[1:]),
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Per-run rows, then mean ± std per variant (Markdown)."""
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}; config {' + '.join(p.name for p in args.config)} "
        f"{' '.join(args.set)}; seeds {args.seeds}; test {args.test_name!r} "
        f"{' '.join(args.eval_set)}\n"
    )
    labels = [label for label, _ in COLUMNS]
    print("| variant | seed | best epoch | val monitor | " + " | ".join(labels) + " | fit s |")
    print("|---" * (len(labels) + 5) + "|")
    for r in results:
        test = r.get("test", {})
        cells = [f"{test.get(key, math.nan):.3f}" for _, key in COLUMNS]
        print(
            f"| {r['variant']} | {r['seed']} | {r['best_epoch']} | {r['val_monitor']:.3f} | "
            + " | ".join(cells)
            + f" | {r['fit_s']:.0f} |"
        )
    if args.val_only:
        return
    print("\n| variant (test, mean ± std) | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for variant in args.variants:
        runs = [r for r in results if r["variant"] == variant]
        cells = []
        for _, key in COLUMNS:
            values = [r["test"][key] for r in runs if not math.isnan(r["test"][key])]
            cells.append(mean_std(values) if values else "n/a")
        print(f"| {variant}, {len(runs)} seeds | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every (variant, seed) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="config (+ overlays)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--val-only", action="store_true", help="never touch the test splits")
    parser.add_argument(
        "--eval-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for the test only (e.g. model.lesion_tta=flips), not for fit",
    )
    parser.add_argument(
        "--test-name",
        default="test",
        help="each run's test folder (default test); another name reads the test splits once "
        "more, for an evaluation set-up chosen on validation after the first test",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--work", type=Path, help="keep logs/checkpoints here (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the per-run results here")
    parser.add_argument(
        "--reuse-fits",
        action="store_true",
        help="runs already fitted in --work (same config) are tested without fitting again",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="also test the ensemble of each variant's seeds (averaged probabilities)",
    )
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    for message in (".*does not have many workers.*", ".*sys.argv.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message)
    args.config = args.config or [REPO / "configs" / "real_lesions.yaml"]
    base = load_configs(args.config)
    os.chdir(REPO)  # the config's data roots are relative to the repository

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for variant in args.variants:
            for seed in args.seeds:
                result = run(base, variant, seed, args, work)
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "val_curve"}), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=2))
        if args.ensemble and not args.val_only:
            for variant in args.variants:
                runs = [r for r in results if r["variant"] == variant]
                if len(runs) > 1:
                    results.append(ensemble(runs, work, args.eval_set, args.test_name))
                    print(json.dumps(results[-1]), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    report(results, args)


if __name__ == "__main__":
    main()
