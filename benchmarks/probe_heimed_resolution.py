"""Diagnostic probe: HEI-MED exudates with a plain loop, scored at about native resolution.

Not a framework benchmark: a plain smp Unet (EfficientNet-Lite0 from the offline ImageNet
weights, smp's default decoder, one EX output) trained for ``--steps`` Adam steps (one-cycle LR)
on the HEI-MED train split that ``configs/real_lesions.yaml`` draws (``split_seed`` 0), through
the project's own ``TJDRDataModule`` (same masks, patches, normalisation), Dice + BCE. It scores
validation EX AUPR (the task's AUPR thresholds) four ways: on the working-resolution masks, and
on masks at 1024² (about HEI-MED's native 979-1098 px field of view) with the probabilities
upsampled bilinearly — the only score that compares working resolutions — each over all
validation photographs and over those with exudate. ``--resolution`` also prints the
working-resolution score at several AUPR threshold counts beside the exact average precision
(how many thresholds a saturated real map needs). Never touches the test split.

``--mask-rule majority`` trains on masks downsampled by area majority instead of the default
max-pooling (a pixel is a lesion when any pixel under it is).

Usage (the repository root; ~10 min on a quiet 2-core CPU with 1 thread)::

    OMP_NUM_THREADS=1 python benchmarks/probe_heimed_resolution.py --size 768
    OMP_NUM_THREADS=1 python benchmarks/probe_heimed_resolution.py --size 512 --resolution
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torchmetrics.classification import BinaryAveragePrecision  # noqa: E402

import multitask_dr.datasets.preprocess as preprocess  # noqa: E402
from multitask_dr.datamodules.tjdr import TJDRDataModule  # noqa: E402
from multitask_dr.lesions import IGNORE_INDEX, LESIONS  # noqa: E402
from multitask_dr.models.pretrained import load_offline_imagenet  # noqa: E402
from multitask_dr.tasks.metrics import AUPR_THRESHOLDS, BinnedAveragePrecision  # noqa: E402

EX = LESIONS.index("EX")
MAX_POOL = preprocess.resize_mask
SCORE_SIZE = 1024


def majority_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Downsample a lesion mask by area majority (the alternative rule under test)."""
    if mask.shape[0] <= size:
        return MAX_POOL(mask, size)
    area = cv2.INTER_AREA
    lesion = cv2.resize((mask == 1).astype(np.float32), (size, size), interpolation=area)
    ignore = cv2.resize((mask == IGNORE_INDEX).astype(np.float32), (size, size), interpolation=area)
    lesion = preprocess._as_3d(lesion, mask) >= 0.5
    ignore = preprocess._as_3d(ignore, mask) > 0.5
    out = lesion.astype(np.uint8)
    out[ignore & ~lesion] = IGNORE_INDEX
    return out


def heimed(args: argparse.Namespace, size: int, rule: str, **extra) -> TJDRDataModule:
    """The config's HEI-MED source at ``size`` with masks downsampled by ``rule``."""
    config = yaml.safe_load((REPO / "configs" / "real_lesions.yaml").read_text())
    source = dict(config["data"]["init_args"]["segmentation"][0]["init_args"])
    source |= {"image_size": size, "patch_size": args.patch, "batch_size": args.batch_size}
    source |= {"cache_dir": str(args.cache / f"{rule}-{size}")} | extra
    preprocess.resize_mask = MAX_POOL if rule == "max_pool" else majority_mask
    datamodule = TJDRDataModule(**source)
    datamodule.setup("fit")
    return datamodule


def train(args: argparse.Namespace) -> torch.nn.Module:
    """The plain loop: ``args.steps`` steps on EX patches."""
    datamodule = heimed(args, args.size, args.mask_rule)
    net = smp.Unet("tu-efficientnet_lite0", encoder_weights=None, classes=1)
    load_offline_imagenet(net.encoder, "tu-efficientnet_lite0")
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.05
    )
    dice = smp.losses.DiceLoss("binary", from_logits=True, ignore_index=IGNORE_INDEX)
    step = 0
    while step < args.steps:
        for batch in datamodule.train_dataloader():
            target = batch["mask"][:, EX : EX + 1].float()
            valid = (target != IGNORE_INDEX).float()
            logits = net(batch["image"])
            bce = (
                F.binary_cross_entropy_with_logits(logits, target * valid, reduction="none") * valid
            )
            loss = 0.5 * bce.sum() / valid.sum().clamp(min=1) + 0.5 * dice(logits, target.long())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step >= args.steps:
                break
    return net.eval()


@torch.no_grad()
def score(net: torch.nn.Module, args: argparse.Namespace) -> dict[str, float]:
    """Validation EX AUPR at the working and the scoring resolution, all / with exudate."""
    work = heimed(args, args.size, "max_pool")
    native = heimed(args, SCORE_SIZE, "max_pool", eval_batch_size=1, patch_size=None)
    metrics = {
        key: BinnedAveragePrecision(1, AUPR_THRESHOLDS, IGNORE_INDEX)
        for key in ("w", "wl", "n", "nl")
    }
    predictions = {}
    working: list[tuple[torch.Tensor, torch.Tensor]] = []
    for batch in work.val_dataloader():
        probs = torch.sigmoid(net(batch["image"]))
        for name, prob, mask in zip(batch["name"], probs, batch["mask"], strict=True):
            predictions[name] = prob[None]
            target = mask[None, EX : EX + 1].long()
            working.append((prob[None], target))
            metrics["w"].update(prob[None], target)
            if (target == 1).any():
                metrics["wl"].update(prob[None], target)
    for batch in native.val_dataloader():
        target = batch["mask"][:, EX : EX + 1].long()
        prob = F.interpolate(predictions[batch["name"][0]], target.shape[-2:], mode="bilinear")
        metrics["n"].update(prob, target)
        if (target == 1).any():
            metrics["nl"].update(prob, target)
    if args.resolution:
        print_resolution_table(working)
    return {key: metric.compute().item() for key, metric in metrics.items()}


RESOLUTIONS = (200, 1_000, 10_000, 100_000)


def print_resolution_table(working: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Working-resolution validation EX AUPR at several threshold counts and exactly."""
    binned = {count: BinnedAveragePrecision(1, count, IGNORE_INDEX) for count in RESOLUTIONS}
    for prob, target in working:
        for metric in binned.values():
            metric.update(prob, target)
    probs = torch.cat([prob.flatten() for prob, _ in working])
    targets = torch.cat([target.flatten() for _, target in working])
    scored = targets != IGNORE_INDEX
    probs, targets = probs[scored], targets[scored]
    exact = BinaryAveragePrecision(thresholds=None)(probs, targets).item()
    lesion = probs[targets == 1]
    saturated = (lesion > 0.995).float().mean().item()
    negatives_above = int(((probs > 0.995) & (targets == 0)).sum())
    print(f"EX pixels above p = 0.995: {saturated:.1%} ({negatives_above} negatives above it)")
    print("| AUPR thresholds | " + " | ".join(f"{count:,}" for count in RESOLUTIONS) + " | exact |")
    print("|---|" + "---|" * (len(RESOLUTIONS) + 1))
    values = " | ".join(f"{binned[count].compute().item():.4f}" for count in RESOLUTIONS)
    print(f"| val EX AUPR (working res, all) | {values} | {exact:.4f} |")


def main(argv: list[str] | None = None) -> None:
    """Train once, print one Markdown row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="working resolution")
    parser.add_argument("--patch", type=int, default=192)
    parser.add_argument("--steps", type=int, default=257)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mask-rule", choices=("max_pool", "majority"), default="max_pool")
    parser.add_argument(
        "--resolution", action="store_true", help="also print AUPR against threshold count"
    )
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "cache" / "probe")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.chdir(REPO)  # the config's data roots are relative to the repository
    start = time.perf_counter()
    scores = score(train(args), args)
    print(
        "| size | patch | steps | mask rule | val AUPR (working res: all / with EX) | "
        f"val AUPR ({SCORE_SIZE}²: all / with EX) | s |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.size} | {args.patch} | {args.steps} | {args.mask_rule} | "
        f"{scores['w']:.3f} / {scores['wl']:.3f} | {scores['n']:.3f} / {scores['nl']:.3f} | "
        f"{time.perf_counter() - start:.0f} |"
    )


if __name__ == "__main__":
    main()
