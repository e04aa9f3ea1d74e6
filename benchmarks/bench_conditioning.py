"""Ablation of the grade head's lesion conditioning on synthetic phantoms (issue 5).

Trains every conditioning mode with several seeds on synthetic TJDR-layout phantoms whose grade
follows a known lesion rule, through the framework's own datamodule and task, selects each run's
checkpoint on ``val/score``, then on the test split reports grade QWK/ACC, lesion mean AUPR and
how often the lesion type with the largest attribution (lesion-map ablation: erase one type's
predicted map and re-grade; effect on the expected grade) is the lesion that decided the grade by
the generator's rule: over all test images of grade >= 1, and over those where the deciding
lesion is *necessary* (erasing it changes the rule's grade; in a grade-2 eye with haemorrhages
and exudates either alone keeps grade 2, so no counterfactual can single one out).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_conditioning.py [--epochs 30] [--seeds 0 1 2]
    # two processes (two cores), then one table:
    python benchmarks/bench_conditioning.py --modes none stats --json a.json &
    python benchmarks/bench_conditioning.py --modes bottleneck bottleneck_max --json b.json
    python benchmarks/bench_conditioning.py --merge a.json b.json
    # re-measure kept checkpoints on a fresh test set (generator seed 1):
    python benchmarks/bench_conditioning.py --work DIR --attribution-only --json results.json \
        --test-seed 1
    # recompute the attribution columns from kept checkpoints:
    python benchmarks/bench_conditioning.py --work DIR --attribution-only --json results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from lightning import Trainer, seed_everything  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from multitask_dr.attribution.ablation import ablate_lesion_maps  # noqa: E402
from multitask_dr.attribution.core import encode  # noqa: E402
from multitask_dr.attribution.sanity import deciding_lesion_is_necessary  # noqa: E402
from multitask_dr.datamodules import TJDRDataModule  # noqa: E402
from multitask_dr.datasets.synthetic.render import render_phantom  # noqa: E402
from multitask_dr.datasets.synthetic.sampling import image_rng, sample_grade  # noqa: E402
from multitask_dr.datasets.synthetic.writers import write_tjdr  # noqa: E402
from multitask_dr.lesions import LESIONS  # noqa: E402
from multitask_dr.models.network import NetworkConfig  # noqa: E402
from multitask_dr.tasks.multitask import MultiTaskDR  # noqa: E402

# "bottleneck_max": the bottleneck head with bottleneck_combine="max".
MODES = ("none", "stats", "lesion_pooled", "bottleneck", "bottleneck_max")


def deciding_lesions(
    root: Path, split: str, size: int, count: int, seed: int = 0
) -> dict[str, tuple[str, bool]]:
    """Image name -> (deciding lesion, whether it is necessary), for graded images.

    The phantoms are re-rendered from the generator's per-image seeds (dataset ``seed``), which
    gives their lesion lists exactly; ``grades.csv`` is checked against them.
    """
    with (root / split / "grades.csv").open() as handle:
        written = {r["image"]: r["deciding_lesion"] for r in csv.DictReader(handle)}
    deciders = {}
    for index in range(count):
        rng = image_rng(seed, "tjdr", split, index)
        phantom = render_phantom(size, sample_grade(rng, None), rng)
        name = f"{index + 1:03d}"
        assert written[name] == (phantom.deciding_lesion or ""), name
        if phantom.deciding_lesion:
            deciders[name] = (phantom.deciding_lesion, deciding_lesion_is_necessary(phantom))
    return deciders


#: Smallest drop of the expected grade that counts as an effect: below it is float32 rounding
#: of the re-batched forward pass (its ulp near grade 2 is 2.4e-7), which a head that never
#: reads the maps also shows.
EFFECT_FLOOR = 1e-6


def attribution_hits(
    task: MultiTaskDR, dm: TJDRDataModule, deciders: dict[str, tuple[str, bool]]
) -> dict[str, float]:
    """Share of graded test images whose top-ablation lesion is the rule's deciding lesion.

    Returns:
        The share over all graded images (``attribution``), over those whose deciding lesion
        is necessary (``attribution_necessary``) and, per deciding lesion type, over the graded
        images it decided (``attribution_MA``, ...: where the misses are).
    """
    hits = {"all": 0, "necessary": 0} | dict.fromkeys(LESIONS, 0)
    totals = {"all": 0, "necessary": 0} | dict.fromkeys(LESIONS, 0)
    task.eval()
    for batch in dm.test_dataloader():
        evidence = encode(task, batch["image"])
        ablation = ablate_lesion_maps(task, evidence, include_all=False)
        for i, name in enumerate(batch["name"]):
            if name not in deciders:
                continue
            decider, necessary = deciders[name]
            top, effect = ablation.ranking(i)[0]
            hit = int(effect > EFFECT_FLOOR and top == decider)
            for subset in ("all", decider, "necessary") if necessary else ("all", decider):
                totals[subset] += 1
                hits[subset] += hit
    names = {"all": "attribution", "necessary": "attribution_necessary"}
    return {
        names.get(subset, f"attribution_{subset}"): hits[subset] / totals[subset]
        if totals[subset]
        else math.nan
        for subset in hits
    }


def attribution(
    task: MultiTaskDR,
    dm: TJDRDataModule,
    root: Path,
    args: argparse.Namespace,
    phantom_seed: int = 0,
) -> dict[str, float]:
    """Attribution columns of one trained model."""
    deciders = deciding_lesions(root, "test", args.size, args.n_test, phantom_seed)
    return attribution_hits(task, dm, deciders)


def test_columns(metrics: dict[str, float]) -> dict[str, float]:
    """The table's grade and lesion columns from ``Trainer.test`` metrics."""
    return {
        "qwk": metrics["test/grade/qwk"],
        "acc": metrics["test/grade/acc"],
        "aupr": metrics["test/seg/aupr_mean"],
    }


def attribution_only(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Recompute the attribution columns from the checkpoints kept in ``--work``.

    With ``--test-seed N`` (N != 0) the test phantoms are a fresh set drawn with generator seed
    ``N``, none of which was seen while choosing settings, and the grade/lesion columns are
    re-measured on it too.
    """
    results = json.loads(args.json.read_text())
    root = args.work / "phantoms"
    # Normalisation always comes from the training phantoms, as in training.
    reference = TJDRDataModule(root=str(root), image_size=args.size)
    reference.fit_normalisation(reference.dataset("train"))
    if args.test_seed:
        root = args.work / f"phantoms_test{args.test_seed}"
        write_tjdr(root, n_train=1, n_test=args.n_test, size=args.size, seed=args.test_seed)
    for result in results:
        folder = args.work / f"{result['mode']}-{result['seed']}"
        # The newest file is the final best one (a copied folder may hold earlier bests too).
        checkpoint = max(folder.glob("*.ckpt"), key=lambda path: path.stat().st_mtime)
        dm = TJDRDataModule(
            root=str(root),
            image_size=args.size,
            batch_size=args.batch,
            seed=result["seed"],
            mean=reference.mean,
            std=reference.std,
            cache_dir=str(args.work / "cache"),
        )
        dm.setup("test")
        task = MultiTaskDR.load_from_checkpoint(checkpoint)
        if args.test_seed:
            trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
            result |= test_columns(trainer.test(task, dm, verbose=False)[0])
        result |= attribution(task, dm, root, args, args.test_seed)
        print(json.dumps(result), flush=True)
    return results


def run(mode: str, seed: int, root: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train, select on validation, test and attribute one mode/seed."""
    seed_everything(seed, verbose=False)
    dm = TJDRDataModule(
        root=str(root),
        image_size=args.size,
        batch_size=args.batch,
        seed=seed,
        cache_dir=str(work / "cache"),
    )
    task = MultiTaskDR(
        network=NetworkConfig(
            encoder=args.encoder,
            decoder_channels=[64, 32, 16, 16, 16],
            conditioning=mode.removesuffix("_max"),
            bottleneck_combine="max" if mode.endswith("_max") else "sum",
            grade_output=args.grade_output,
            detach_lesions=True,
        ),
        teacher_forcing=args.teacher_forcing,
        lr=args.lr,
        pos_weight=3.0,
        warmup_epochs=1,
    )
    checkpoint = ModelCheckpoint(dirpath=work / f"{mode}-{seed}", monitor="val/score", mode="max")
    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=False,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(task, dm)
    seconds = time.perf_counter() - start
    # Testing restores the best checkpoint into ``task``; attribution reads the same weights.
    metrics = trainer.test(task, dm, ckpt_path="best", verbose=False)[0]
    result = {"mode": mode, "seed": seed} | test_columns(metrics) | {"seconds": seconds}
    return result | attribution(task, dm, root, args)


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def print_tables(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The ablation table (mean ± std over seeds) and the per-deciding-lesion breakdown."""
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}; {args.encoder} Unet, {args.grade_output} grade output, "
        f"teacher forcing {args.teacher_forcing}, "
        f"{args.size}² phantoms, "
        f"{args.n_train} train / {args.n_test} test, {args.epochs} epochs, "
        f"seeds {args.seeds}\n"
    )
    print(
        "| conditioning | grade QWK | grade ACC | lesion mAUPR | top attribution = deciding "
        "lesion (all graded) | (deciding lesion necessary) | train s/run |"
    )
    print("|---|---|---|---|---|---|---|")
    columns = ("qwk", "acc", "aupr", "attribution", "attribution_necessary")
    for mode in args.modes:
        rows = [r for r in results if r["mode"] == mode]
        if rows:
            cells = [mean_std([r[k] for r in rows]) for k in columns]
            seconds = statistics.mean(r["seconds"] for r in rows)
            print(f"| `{mode}` | " + " | ".join(cells) + f" | {seconds:.0f} |")
    print("\n| conditioning | " + " | ".join(f"hits where {k} decided" for k in LESIONS) + " |")
    print("|---|" + "---|" * len(LESIONS))
    for mode in args.modes:
        rows = [r for r in results if r["mode"] == mode and "attribution_MA" in r]
        if rows:
            cells = [mean_std([r[f"attribution_{k}"] for r in rows]) for k in LESIONS]
            print(f"| `{mode}` | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--grade-output", default="softmax", choices=("softmax", "coral"))
    parser.add_argument(
        "--teacher-forcing", type=float, default=0.5, help="model.teacher_forcing (see task)"
    )
    parser.add_argument("--json", type=Path, help="also write the per-run results here")
    parser.add_argument("--work", type=Path, help="keep data and checkpoints here (default: temp)")
    parser.add_argument(
        "--attribution-only",
        action="store_true",
        help="recompute the attribution columns of --json runs from --work",
    )
    parser.add_argument(
        "--test-seed",
        type=int,
        default=0,
        help="with --attribution-only: re-measure on fresh test phantoms of this generator seed",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="only print the tables of these --json files (e.g. modes run in two processes)",
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")

    results = []
    if args.merge:
        results = [r for path in args.merge for r in json.loads(path.read_text())]
    elif args.attribution_only:
        results = attribution_only(args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            root = work / "phantoms"
            # The phantom set is fixed (seed 0); run seeds vary split, augmentation and weights.
            write_tjdr(root, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=0)
            for mode in args.modes:
                for seed in args.seeds:
                    result = run(mode, seed, root, args, work)
                    results.append(result)
                    print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))

    print_tables(results, args)


if __name__ == "__main__":
    main()
