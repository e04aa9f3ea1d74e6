"""Diagnostic: where a trained model's exudate errors lie on a lesion source's validation split.

Not a benchmark of speed or of a goal: it reads one checkpoint (for example a fit of
``benchmarks/bench_real_lesions.py --val-only``) and one lesion source of its config, predicts the
source's **validation** photographs (never the test split) with the checkpoint's own evaluation
settings, and prints Markdown tables of one lesion type's AUPR (``--lesion``, EX by default;
the task's AUPR thresholds):

- pooled over the split, and per photograph with exudate;
- with the negatives within ``d`` pixels of a labelled exudate left unscored (how much of the
  error is the outline's precision rather than a missed or invented lesion), and likewise near
  the ignore regions (``Other Bright Lesion`` in HEI-MED);
- where the confident false positives are (retina scored at or above the median exudate pixel's
  probability): in photographs without exudate, next to a labelled exudate, elsewhere in
  photographs with exudate, near the field-of-view edge;
- with ``--read-sizes``, the same model's maps with the photographs read (field-of-view crop and
  resize from the original files) at other sizes, each resized to the working size and scored
  against its masks, alone and averaged with the working size's map.

Usage (the repository root; about 2 min on the 2-core CPU)::

    OMP_NUM_THREADS=1 python benchmarks/real_lesion_errors.py \
        --config WORK/pretrained-seed0.yaml --ckpt WORK/pretrained-seed0/ckpt/best.ckpt
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.cli_runs import lesion_sources  # noqa: E402
from multitask_dr.datamodules.tjdr import TJDRDataModule  # noqa: E402
from multitask_dr.lesions import IGNORE_INDEX, LESIONS  # noqa: E402
from multitask_dr.tasks.metrics import AUPR_THRESHOLDS, BinnedAveragePrecision  # noqa: E402
from multitask_dr.tasks.multitask import MultiTaskDR  # noqa: E402

BOUNDARY_BANDS = (1, 2, 3, 5)
IGNORE_BANDS = (3, 10)
NEAR_LESION = 3
NEAR_EDGE = 10


def source_datamodule(
    config: dict[str, Any], name: str, checkpoint: dict, image_size: int | None = None
) -> TJDRDataModule:
    """The config's lesion source ``name``, with the normalisation the checkpoint trained with,
    its photographs read at ``image_size`` (``None``: the source's own)."""
    for source in lesion_sources(config):
        if source["init_args"].get("name") == name:
            size = {} if image_size is None else {"image_size": image_size}
            datamodule = TJDRDataModule(**source["init_args"] | size)
            # The source's saved state, as Lightning restores it (before setup fits any).
            datamodule.load_state_dict(checkpoint.get(type_name(config), {}).get(name, {}))
            datamodule.setup("validate")
            return datamodule
    raise SystemExit(f"no lesion source named {name!r} in the config")


def type_name(config: dict[str, Any]) -> str:
    """The datamodule's class name, the key Lightning stores its state under."""
    return config["data"]["class_path"].rsplit(".", 1)[-1]


@torch.no_grad()
def predict(model: MultiTaskDR, datamodule: TJDRDataModule, lesion: int) -> tuple[np.ndarray, ...]:
    """Probabilities, masks and field-of-view masks of ``lesion`` over the validation split."""
    probs, masks, fovs = [], [], []
    # Outside the circular field of view the crop leaves black, normalised per channel.
    mean, std = np.asarray(datamodule.mean), np.asarray(datamodule.std)
    black = (-mean / std).astype(np.float32)[None, :, None, None]
    for batch in datamodule.val_dataloader():
        out = model.evaluation_forward(batch["image"], batch.get("image_reads", ()))
        probs.append(out["lesion_probs"][:, lesion].numpy())
        masks.append(batch["mask"][:, lesion].numpy())
        fovs.append(~np.isclose(batch["image"].numpy(), black).all(axis=1))
    return np.concatenate(probs), np.concatenate(masks), np.concatenate(fovs)


def aupr(probs: np.ndarray, masks: np.ndarray, unscored: np.ndarray | None = None) -> float:
    """AUPR over every scored pixel; ``unscored`` pixels count as ignore regions."""
    target = masks.astype(np.int64)
    if unscored is not None:
        target = np.where(unscored, IGNORE_INDEX, target)
    metric = BinnedAveragePrecision(1, AUPR_THRESHOLDS, IGNORE_INDEX)
    for prob, mask in zip(probs, target, strict=True):
        metric.update(torch.from_numpy(prob)[None, None], torch.from_numpy(mask)[None, None])
    return metric.compute().item()


def near(masks: np.ndarray, value: int, pixels: int) -> np.ndarray:
    """Pixels within ``pixels`` (chessboard distance) of a pixel equal to ``value``."""
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return np.stack([cv2.dilate((m == value).astype(np.uint8), kernel) > 0 for m in masks])


def near_edge(fovs: np.ndarray, pixels: int) -> np.ndarray:
    """Pixels outside the field of view or within ``pixels`` of its edge."""
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return ~np.stack([cv2.erode(f.astype(np.uint8), kernel) > 0 for f in fovs])


def print_aupr_tables(probs: np.ndarray, masks: np.ndarray, names: list[str], lesion: str) -> None:
    """Pooled and per-photograph AUPR, and AUPR with negatives near outlines left unscored."""
    pooled = aupr(probs, masks)
    print(f"pooled {lesion} AUPR over {len(masks)} photographs: {pooled:.3f}\n")
    print(f"| photograph | {lesion} pixels | {lesion} AUPR |\n|---|---|---|")
    for i, name in enumerate(names):
        if (masks[i] == 1).any():
            score = aupr(probs[i : i + 1], masks[i : i + 1])
            print(f"| {name} | {int((masks[i] == 1).sum())} | {score:.3f} |")
    print(f"\n| negatives left unscored | {lesion} AUPR |\n|---|---|\n| none | {pooled:.3f} |")
    negative = masks == 0
    for pixels in BOUNDARY_BANDS:
        band = near(masks, 1, pixels) & negative
        print(f"| within {pixels} px of a labelled {lesion} | {aupr(probs, masks, band):.3f} |")
    for pixels in IGNORE_BANDS:
        band = near(masks, IGNORE_INDEX, pixels) & negative
        print(f"| within {pixels} px of an ignore region | {aupr(probs, masks, band):.3f} |")


def print_false_positives(
    probs: np.ndarray, masks: np.ndarray, fovs: np.ndarray, lesion: str
) -> None:
    """Where the retina scored at or above the median lesion pixel's probability lies."""
    threshold = float(np.median(probs[masks == 1]))
    confident = (masks == 0) & (probs >= threshold)
    with_lesion = np.array([(m == 1).any() for m in masks])[:, None, None]
    next_to = near(masks, 1, NEAR_LESION)
    total = max(int(confident.sum()), 1)
    print(
        f"\nconfident false positives (p >= {threshold:.3f}, the median {lesion} pixel's): "
        f"{int(confident.sum())} pixels against {int((probs[masks == 1] >= threshold).sum())} "
        f"{lesion} pixels at or above it (field of view: {fovs.mean():.0%} of the pixels)\n"
    )
    print("| where | share |\n|---|---|")
    rows = {
        f"photographs without {lesion}": confident & ~with_lesion,
        f"within {NEAR_LESION} px of a labelled {lesion}": confident & next_to,
        f"elsewhere in photographs with {lesion}": confident & with_lesion & ~next_to,
        f"within {NEAR_EDGE} px of the field-of-view edge": confident & near_edge(fovs, NEAR_EDGE),
    }
    for where, pixels in rows.items():
        print(f"| {where} | {pixels.sum() / total:.0%} |")


def maps_read_at(
    model: MultiTaskDR,
    config: dict[str, Any],
    name: str,
    checkpoint: dict,
    sizes: list[int],
    lesion: int,
    working: tuple[int, int],
) -> dict[int, np.ndarray]:
    """``lesion``'s validation maps with the photographs read at each of ``sizes``, every map
    resized to ``working`` (area averaging, the working-size masks' grid) to be scored there."""
    maps = {}
    for size in sizes:
        probs = predict(model, source_datamodule(config, name, checkpoint, size), lesion)[0]
        resized = torch.nn.functional.interpolate(
            torch.from_numpy(probs)[:, None], size=working, mode="area"
        )
        maps[size] = resized[:, 0].numpy()
    return maps


def print_size_table(
    maps: dict[int, np.ndarray], masks: np.ndarray, working: int, lesion: str
) -> None:
    """AUPR at the working size's masks of the maps read at each size, alone and averaged
    with the working size's (the same model, so only the photographs' resolution differs)."""
    print(f"\n| photographs read at | {lesion} AUPR (working-size masks) |\n|---|---|")
    for size, probs in maps.items():
        print(f"| {size}² | {aupr(probs, masks):.3f} |")
    for size, probs in maps.items():
        if size != working:
            both = (maps[working] + probs) / 2
            print(f"| mean of {working}² and {size}² | {aupr(both, masks):.3f} |")
    if len(maps) > 2:
        print(f"| mean of all | {aupr(sum(maps.values()) / len(maps), masks):.3f} |")


def main(argv: list[str] | None = None) -> None:
    """Predict the validation split once and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the run's composed config")
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--source", default="heimed", help="lesion source name")
    parser.add_argument("--lesion", default="EX", choices=LESIONS)
    parser.add_argument(
        "--lesion-tta", choices=("none", "flips", "dihedral"), help="default: the checkpoint's"
    )
    parser.add_argument(
        "--read-sizes",
        type=int,
        nargs="+",
        metavar="SIZE",
        help="also read the photographs at these sizes (the working one added) and score each "
        "map, resized to the working size, alone and averaged with the working size's",
    )
    args = parser.parse_args(argv)
    if any(size % 32 for size in args.read_sizes or ()):
        # The encoder halves the image five times.
        parser.error(f"--read-sizes must be multiples of 32, got {args.read_sizes}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = yaml.safe_load(args.config.read_text())
    checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    os.chdir(REPO)  # the config's data roots are relative to the repository
    datamodule = source_datamodule(config, args.source, checkpoint)
    model = MultiTaskDR.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    if args.lesion_tta is not None:
        model.hparams.lesion_tta = args.lesion_tta
    lesion = LESIONS.index(args.lesion)
    probs, masks, fovs = predict(model, datamodule, lesion)
    names = [r.name for r in datamodule.datasets["val"].records]
    print_aupr_tables(probs, masks, names, args.lesion)
    print_false_positives(probs, masks, fovs, args.lesion)
    if args.read_sizes:
        working = datamodule.image_size
        # Each other size read once, in the order given.
        sizes = [size for size in dict.fromkeys(args.read_sizes) if size != working]
        others = maps_read_at(
            model, config, args.source, checkpoint, sizes, lesion, masks.shape[-2:]
        )
        print_size_table({working: probs} | others, masks, working, args.lesion)


if __name__ == "__main__":
    main()
