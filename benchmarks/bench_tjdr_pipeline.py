"""TJDR data pipeline speed: Labelme parsing, rasterizing, resizing, loading, vs training.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_tjdr_pipeline.py [--images 6] [--size 2048]

Prints a Markdown table. Goals (issue 3): rasterize a 2048² Labelme file with ~300 shapes in
<= 20 ms; the cached loader at least 3x faster than a train step (images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_rasterize import synthetic_labelme  # noqa: E402

from multitask_dr.datamodules.transforms import (  # noqa: E402  # noqa: E402
    Augmentation,
    LesionCentredCrop,
    SampleTransform,
    augmentation_ops,
)
from multitask_dr.datasets.labelme import rasterize_annotation, read_labelme  # noqa: E402
from multitask_dr.datasets.preprocess import resize_mask  # noqa: E402
from multitask_dr.datasets.problems import ProblemLog  # noqa: E402
from multitask_dr.datasets.synthetic.writers import write_tjdr  # noqa: E402
from multitask_dr.datasets.tjdr import TJDRDataset  # noqa: E402
from multitask_dr.models.network import MultiTaskNet, NetworkConfig  # noqa: E402


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def loader_rate(dataset: TJDRDataset, passes: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(passes):
        for i in range(len(dataset)):
            dataset[i]
    return passes * len(dataset) / (time.perf_counter() - start)


def train_step_rate(encoder: str, patch: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    net = MultiTaskNet(NetworkConfig(encoder=encoder, conditioning="stats"))
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    images = torch.randn(batch, 3, patch, patch)
    masks = (torch.rand(batch, 4, patch, patch) > 0.99).float()
    grades = torch.randint(0, 5, (batch,))

    def step() -> None:
        out = net(images)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out["lesion_logits"], masks)
        loss = loss + torch.nn.functional.cross_entropy(out["grade_logits"], grades)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    seconds = median_ms(step, steps) / 1000
    return batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="native image size")
    parser.add_argument("--shapes", type=int, default=300, help="shapes in the parse benchmark")
    parser.add_argument("--working", type=int, default=1024, help="working resolution")
    parser.add_argument("--patch", type=int, default=256, help="training patch")
    parser.add_argument("--images", type=int, default=6, help="images in the loader benchmark")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # 1. One dense Labelme file: parse, rasterize, resize.
        doc = synthetic_labelme(args.size, args.shapes, seed=0)
        path = tmp_path / "dense.json"
        path.write_text(json.dumps(doc))
        log = ProblemLog()
        annotation = read_labelme(path, problems=log)
        assert annotation is not None
        mask = rasterize_annotation(annotation, args.size, args.size)
        parse = median_ms(lambda: read_labelme(path, problems=ProblemLog()), args.repeat)
        raster = median_ms(
            lambda: rasterize_annotation(annotation, args.size, args.size), args.repeat
        )
        resize = median_ms(lambda: resize_mask(mask, args.working), args.repeat)
        shapes = len(annotation.shapes)
        rows.append((f"parse Labelme ({shapes} shapes, {args.size}²)", f"{parse:.1f} ms", ""))
        rows.append(("rasterize (labelme rule, the default)", f"{raster:.1f} ms", "goal <= 20 ms"))
        rows.append((f"max-pool resize to {args.working}²", f"{resize:.1f} ms", ""))
        total = parse + raster + resize
        rows.append(("parse + rasterize + resize", f"{total:.1f} ms", ""))

        # 2. Loader: uncached (decode PNG + Labelme + crop + resize) vs cached (.npz).
        root = tmp_path / "tjdr"
        write_tjdr(root, n_train=args.images, n_test=1, size=args.size, seed=0)
        cache = tmp_path / "cache"
        dataset = TJDRDataset(
            root, "train", annotation="labelme", image_size=args.working, cache_dir=cache
        )
        uncached = loader_rate(dataset)
        cached = loader_rate(dataset, passes=3)
        ops = [LesionCentredCrop(args.patch, 0.5), *augmentation_ops(Augmentation(), args.patch)]
        dataset.transform = SampleTransform(ops, (0.5,) * 3, (0.25,) * 3, seed=0)
        cached_aug = loader_rate(dataset, passes=3)
        shutil.rmtree(cache)
        rows.append(
            (f"loader uncached (PNG + Labelme -> {args.working}²)", f"{uncached:.2f} img/s", "")
        )
        rows.append(("loader cached (.npz)", f"{cached:.1f} img/s", ""))
        rows.append(
            (f"loader cached + {args.patch}² patch + augmentation", f"{cached_aug:.1f} img/s", "")
        )

    # 3. Model train step on patches.
    step = train_step_rate(args.encoder, args.patch, args.batch, max(args.repeat // 2, 3))
    rows.append(
        (
            f"train step Unet-{args.encoder}, {args.patch}², batch {args.batch}",
            f"{step:.2f} img/s",
            "",
        )
    )
    ratio = cached_aug / step
    rows.append(("cached loader / train step", f"{ratio:.1f}x", "goal >= 3x"))

    print(
        f"\nmachine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}\n"
    )
    print("| step | time / rate | goal |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
