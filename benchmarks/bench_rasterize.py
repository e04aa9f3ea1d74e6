"""Benchmark: Labelme JSON -> shapely -> (H, W, 4) lesion mask -> max-pooled 1024² mask.

Builds a synthetic fundus-sized Labelme file (2048², ~300 shapes: microaneurysm circles,
haemorrhage / hard-exudate / soft-exudate polygons, some self-intersecting, two ignore regions)
and times each step, comparing rasterizers against the pixel-centre reference
(``shapely.contains_xy`` at pixel centres):

* ``scanline``: the project's rasterizer (:mod:`multitask_dr.datasets.rasterize`).
* ``contains_xy``: the reference, per shape on its bounding box.
* ``cv2.fillPoly``: one call per polygon (all its rings), coordinates shifted by -0.5 with
  8 sub-pixel bits, one plane per channel, merged. It also paints every pixel an edge passes
  through, so it does not obey the pixel-centre rule (see the "differs" column).
* ``PIL.ImageDraw``: what Labelme's own converter uses; boundary-inclusive as well.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rasterize.py [--repeat 15]

Prints a Markdown table. Numbers are wall-clock on whatever machine runs it; the header states
threads, CPU and load so results can be compared fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL
import shapely
import shapely.affinity
from PIL import Image, ImageDraw
from shapely.geometry.base import BaseGeometry

from multitask_dr.datasets.labelme import rasterize_annotation, read_labelme
from multitask_dr.datasets.preprocess import resize_mask
from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.datasets.rasterize import IGNORE_CHANNEL, rasterize_geometry, rasterize_shapes
from multitask_dr.lesions import IGNORE_INDEX, LESIONS

Shapes = list[tuple[int, BaseGeometry]]


def synthetic_labelme(size: int, count: int, seed: int) -> dict[str, Any]:
    """A Labelme dict with fundus-like lesions inside a circular field of view."""
    rng = np.random.default_rng(seed)
    centre, fov = size / 2, 0.46 * size
    shapes: list[dict[str, Any]] = []

    def where() -> np.ndarray:
        radius, angle = fov * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        return centre + radius * np.array([np.cos(angle), np.sin(angle)])

    def blob(label: str, r_min: float, r_max: float, n_min: int, n_max: int, twist: bool) -> None:
        n = int(rng.integers(n_min, n_max))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        if twist:  # shuffled vertex order: a self-intersecting outline
            rng.shuffle(angles)
        radii = rng.uniform(r_min, r_max) * rng.uniform(0.6, 1.0, n)
        xy = where() + np.c_[radii * np.cos(angles), radii * np.sin(angles)]
        shapes.append({"label": label, "points": xy.round(2).tolist(), "shape_type": "polygon"})

    n_ma, n_he, n_ex = int(0.47 * count), int(0.23 * count), int(0.2 * count)
    n_se = count - n_ma - n_he - n_ex - 2
    for _ in range(n_ma):
        x, y = where()
        r = rng.uniform(1.5, 6)
        shapes.append({"label": "MA", "points": [[x, y], [x + r, y]], "shape_type": "circle"})
    for i in range(n_he):
        blob("HE", 8, 60, 12, 40, twist=i % 7 == 0)
    for i in range(n_ex):
        blob("EX", 3, 25, 6, 20, twist=i % 9 == 0)
    for i in range(n_se):
        blob("SE", 15, 70, 10, 30, twist=i % 5 == 0)
    for _ in range(2):
        blob("__ignore__", 30, 80, 8, 12, twist=False)
    order = rng.permutation(len(shapes))
    return {
        "version": "5.7.0",
        "flags": {},
        "shapes": [shapes[i] | {"group_id": None, "flags": {}} for i in order],
        "imagePath": "synthetic.png",
        "imageData": None,
        "imageHeight": size,
        "imageWidth": size,
    }


def _rings_cv2(geometry: BaseGeometry, scale: int) -> list[np.ndarray]:
    rings = shapely.get_rings(shapely.get_parts(geometry))
    return [np.round((shapely.get_coordinates(r) - 0.5) * scale).astype(np.int32) for r in rings]


def rasterize_cv2(shapes: Shapes, height: int, width: int, channels: int) -> np.ndarray:
    """cv2.fillPoly, one call per polygon part so overlapping shapes do not cancel."""
    shift = 8
    planes = [np.zeros((height, width), np.uint8) for _ in range(channels)]
    ignore = np.zeros((height, width), np.uint8)
    for channel, geometry in shapes:
        plane = ignore if channel == IGNORE_CHANNEL else planes[channel]
        for part in shapely.get_parts(geometry):
            cv2.fillPoly(plane, _rings_cv2(part, 1 << shift), 1, cv2.LINE_8, shift)
    out = cv2.merge(planes)
    out[ignore.astype(bool)] = IGNORE_INDEX
    return out


def rasterize_pil(shapes: Shapes, height: int, width: int, channels: int) -> np.ndarray:
    """PIL ImageDraw.polygon as Labelme's converter uses it; holes cut on a scratch image."""
    planes = [Image.new("L", (width, height)) for _ in range(channels + 1)]
    draws = [ImageDraw.Draw(p) for p in planes]
    for channel, geometry in shapes:
        for part in shapely.get_parts(geometry):
            exterior = [tuple(p) for p in shapely.get_coordinates(part.exterior) - 0.5]
            if not part.interiors:
                draws[channel].polygon(exterior, fill=1, outline=1)
                continue
            scratch = Image.new("L", (width, height))
            scratch_draw = ImageDraw.Draw(scratch)
            scratch_draw.polygon(exterior, fill=1, outline=1)
            for hole in part.interiors:
                scratch_draw.polygon(
                    [tuple(p) for p in shapely.get_coordinates(hole) - 0.5], fill=0, outline=0
                )
            planes[channel].paste(1, mask=scratch)
    arrays = [np.asarray(p) for p in planes]
    out = np.stack(arrays[:channels], axis=2)
    out[arrays[channels].astype(bool)] = IGNORE_INDEX  # index -1 is the last plane
    return out


def maxpool_reshape(mask: np.ndarray, size: int) -> np.ndarray:
    """Same rule as ``preprocess.resize_mask`` for integer factors, by reshape + reductions."""
    height, width, channels = mask.shape
    fy, fx = height // size, width // size
    blocks = mask.reshape(size, fy, size, fx, channels)
    lesion = (blocks == 1).any(axis=(1, 3))
    ignore = (blocks == IGNORE_INDEX).sum(axis=(1, 3)) * 2 > fy * fx
    out = lesion.astype(np.uint8)
    out[ignore & ~lesion] = IGNORE_INDEX
    return out


def maxpool_strided(mask: np.ndarray, size: int) -> np.ndarray:
    """The same rule, looping over the f x f offsets of strided views (no 5-D reductions)."""
    height, width, _ = mask.shape
    fy, fx = height // size, width // size
    lesion = np.zeros((size, size, mask.shape[2]), dtype=bool)
    ignored = np.zeros(lesion.shape, dtype=np.uint8)
    for dy in range(fy):
        for dx in range(fx):
            view = mask[dy::fy, dx::fx]
            lesion |= view == 1
            ignored += view == IGNORE_INDEX
    out = lesion.astype(np.uint8)
    out[(ignored.astype(np.int32) * 2 > fy * fx) & ~lesion] = IGNORE_INDEX
    return out


def surviving(geometries: list[BaseGeometry], small: np.ndarray, factor: int, channel: int) -> int:
    """How many lesions still have a lesion pixel under them after downsampling by ``factor``."""
    alive = 0
    for geometry in geometries:
        minx, miny, maxx, maxy = geometry.bounds
        # Rasterize in a small window aligned to the factor: cheap and exact.
        c0, r0 = int(minx) // factor * factor, int(miny) // factor * factor
        window = (int(maxy) + 2 - r0, int(maxx) + 2 - c0)
        local = rasterize_geometry(shapely.affinity.translate(geometry, -c0, -r0), *window)
        rows, cols = np.nonzero(local)
        alive += bool((small[(rows + r0) // factor, (cols + c0) // factor, channel] == 1).any())
    return alive


def resize_rows(
    mask: np.ndarray,
    out: int,
    factor: int,
    microaneurysms: list[BaseGeometry],
    ma: int,
    repeat: int,
) -> list[tuple[str, str, float, float, str]]:
    """Time each way of shrinking the mask to ``out``² and count microaneurysms that survive."""
    resizers: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("preprocess.resize_mask (cv2 INTER_AREA > 0)", lambda: resize_mask(mask, out)),
        ("reshape + any/sum (same output)", lambda: maxpool_reshape(mask, out)),
        ("strided views, f x f loop (same output)", lambda: maxpool_strided(mask, out)),
        (
            "cv2 INTER_NEAREST (not max-pooling)",
            lambda: cv2.resize(mask, (out, out), interpolation=cv2.INTER_NEAREST),
        ),
    ]
    pooled = resize_mask(mask, out)
    rows = []
    for name, fn in resizers:
        small = fn()
        if "same output" in name:
            assert np.array_equal(small, pooled), name
        alive = surviving(microaneurysms, small, factor, ma)
        note = f"{alive}/{len(microaneurysms)} MAs keep a pixel"
        rows.append((f"resize to {out}", name, *time_ms(fn, repeat), note))
    return rows


def time_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and minimum wall-clock milliseconds over ``repeat`` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e3)
    return statistics.median(runs), min(runs)


def components(mask: np.ndarray, channel: int) -> int:
    """Connected lesion blobs in one channel (8-connectivity), background excluded."""
    return (
        cv2.connectedComponents((mask[..., channel] == 1).astype(np.uint8), connectivity=8)[0] - 1
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--shapes", type=int, default=300)
    parser.add_argument("--out-sizes", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or (os.cpu_count() or 1)
    cv2.setNumThreads(threads)  # cv2 has its own pool; hold it to the same count
    size, repeat = args.size, args.repeat
    data = synthetic_labelme(size, args.shapes, args.seed)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.json"
        path.write_text(json.dumps(data))
        text = path.read_text()
        annotation = read_labelme(path, problems=ProblemLog(strict=True))
        assert annotation is not None and len(annotation.shapes) == len(data["shapes"])
        rows: list[tuple[str, str, float, float, str]] = []
        rows.append(("parse", "json.loads", *time_ms(lambda: json.loads(text), repeat), ""))
        rows.append(
            (
                "parse",
                "read_labelme (json + shapely + make_valid)",
                *time_ms(lambda: read_labelme(path, problems=ProblemLog(strict=True)), repeat),
                "",
            )
        )

    shapes: Shapes = [
        (IGNORE_CHANNEL if s.lesion is None else LESIONS.index(s.lesion), s.geometry)
        for s in annotation.shapes
    ]
    channels = len(LESIONS)
    reference = rasterize_shapes(shapes, size, size, channels, method="contains")
    labelled = int((reference != 0).any(axis=2).sum())
    candidates: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("scanline: rasterize_annotation (ours)", lambda: rasterize_annotation(annotation)),
        (
            "contains_xy per shape bbox (reference)",
            lambda: rasterize_shapes(shapes, size, size, channels, method="contains"),
        ),
        ("cv2.fillPoly per polygon, shift=8", lambda: rasterize_cv2(shapes, size, size, channels)),
        ("PIL ImageDraw.polygon", lambda: rasterize_pil(shapes, size, size, channels)),
    ]
    for name, fn in candidates:
        differs = int((fn() != reference).any(axis=2).sum())
        note = f"{differs} of {labelled} labelled px differ ({100 * differs / labelled:.2f} %)"
        runs = max(3, repeat // 3) if "contains" in name else repeat  # the slow one
        rows.append(("rasterize", name, *time_ms(fn, runs), note))

    mask = rasterize_annotation(annotation)
    ma = LESIONS.index("MA")
    microaneurysms = [s.geometry for s in annotation.shapes if s.lesion == "MA"]
    for out in args.out_sizes:
        rows += resize_rows(mask, out, size // out, microaneurysms, ma, repeat)

    polygons = [s["points"] for s in data["shapes"] if s["shape_type"] == "polygon"]
    repaired = sum(not shapely.Polygon(points).is_valid for points in polygons)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Synthetic Labelme file: {size}x{size}, {len(data['shapes'])} shapes "
        f"({sum(s['shape_type'] == 'circle' for s in data['shapes'])} MA circles, "
        f"{repaired} self-intersecting polygons repaired by make_valid), "
        f"{labelled} labelled pixels.\n"
        f"Machine: {cpu_name()}, {os.cpu_count()} cores (shared), load average {load:.2f}; "
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"cv2 {cv2.getNumThreads()}. Python {platform.python_version()}, numpy {np.__version__}, "
        f"shapely {shapely.__version__}, cv2 {cv2.__version__}, Pillow {PIL.__version__}. "
        f"Median and min of {repeat} runs after a warm-up (contains_xy: fewer).\n"
    )
    print("| step | implementation | median ms | min ms | notes |")
    print("|---|---|---:|---:|---|")
    for step, name, median, best, note in rows:
        print(f"| {step} | {name} | {median:.1f} | {best:.1f} | {note} |")


if __name__ == "__main__":
    main()
