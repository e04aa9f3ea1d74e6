"""Benchmark: Labelme JSON -> (H, W, 4) lesion mask, by each rule and by PIL or cv2 alone.

One run times, side by side on the same parsed file:

* ``labelme`` rule (the default): :func:`multitask_dr.datasets.labelme.rasterize_annotation`,
  Labelme's own PIL calls on row-cropped canvases;
* ``pixel_centre`` rule: the same function with ``rasterize="pixel_centre"`` (vectorised numpy
  scanline over the repaired shapely geometries);
* PIL alone: Labelme's PIL calls on one full-size canvas per label, stacked into the mask;
* cv2 alone: ``fillPoly`` + ``polylines``, ``circle``, ``rectangle`` on one plane per label,
  merged (integer coordinates, so it does not quite follow Labelme's rounding);
* Labelme's converter as Labelme runs it: one full-size canvas per shape (``shape_to_mask``),
  the reference every "differ" count is taken against.

Two inputs: a synthetic fundus-sized file (2048², 300 shapes: microaneurysm circles,
haemorrhage / exudate / cotton-wool polygons, some self-intersecting, two ignore regions) and a
real HEI-MED file from ``../shared/data/heimed_labelme`` (skipped when absent). Goals: the
default rule <= 20 ms on the synthetic file and <= 1.5x PIL alone.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rasterize.py [--repeat 15]

Prints Markdown tables; the header states threads, CPU and load so runs compare fairly.
"""

from __future__ import annotations

import argparse
import json
import math
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
from PIL import Image, ImageDraw

from multitask_dr.datasets.labelme import LabelmeAnnotation, rasterize_annotation, read_labelme
from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.lesions import IGNORE_INDEX, LESIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
HEIMED = REPO_ROOT.parent / "shared" / "data" / "heimed_labelme"
#: HEI-MED's label names onto channels, so every shape is drawn (the choice is arbitrary).
HEIMED_LABELS = {"exudate": "EX", "other bright lesion": "SE"}

#: ``(channel or -1 for ignore, shape_type, points)`` straight from the JSON.
RawShapes = list[tuple[int, str, list[list[float]]]]


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


def raw_shapes(data: dict[str, Any], annotation: LabelmeAnnotation) -> RawShapes:
    """The file's shapes with the channels the reader gave them (every shape was kept)."""
    assert len(annotation.shapes) == len(data["shapes"])
    return [
        (
            -1 if shape.lesion is None else LESIONS.index(shape.lesion),
            raw.get("shape_type") or "polygon",
            raw["points"],
        )
        for shape, raw in zip(annotation.shapes, data["shapes"], strict=True)
    ]


def draw_like_labelme(draw: ImageDraw.ImageDraw, shape_type: str, points: list[Any]) -> None:
    """Labelme's ``shape_to_mask`` calls for one shape (line width 10, point radius 5)."""
    xy = [tuple(p) for p in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        (x0, y0), (x1, y1) = xy
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        draw.rectangle(box, outline=1, fill=1)
    elif shape_type == "line":
        draw.line(xy, fill=1, width=10)
    elif shape_type == "linestrip":
        draw.line(xy, fill=1, width=10, joint="curve")
    elif shape_type == "point":
        (cx, cy), r = xy[0], 5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        draw.polygon(xy, outline=1, fill=1)


def _assemble(planes: list[np.ndarray], ignore: np.ndarray | None) -> np.ndarray:
    out = np.stack(planes, axis=2)
    if ignore is not None:
        out[ignore.astype(bool)] = IGNORE_INDEX
    return out


def labelme_per_shape(shapes: RawShapes, height: int, width: int) -> np.ndarray:
    """Labelme's converter as it runs: a full-size canvas per shape, ORed per label."""
    planes = [np.zeros((height, width), bool) for _ in range(len(LESIONS) + 1)]
    for channel, shape_type, points in shapes:
        canvas = Image.fromarray(np.zeros((height, width), dtype=np.uint8))
        draw_like_labelme(ImageDraw.Draw(canvas), shape_type, points)
        planes[channel] |= np.array(canvas, dtype=bool)  # channel -1 is the last plane
    return _assemble([p.astype(np.uint8) for p in planes[:-1]], planes[-1])


def pil_alone(shapes: RawShapes, height: int, width: int) -> np.ndarray:
    """The same PIL calls on one full-size canvas per label."""
    canvases = [Image.new("L", (width, height)) for _ in range(len(LESIONS) + 1)]
    draws = [ImageDraw.Draw(c) for c in canvases]
    for channel, shape_type, points in shapes:
        draw_like_labelme(draws[channel], shape_type, points)
    arrays = [np.asarray(c) for c in canvases]
    has_ignore = any(channel == -1 for channel, _, _ in shapes)
    return _assemble(arrays[:-1], arrays[-1] if has_ignore else None)


def cv2_alone(shapes: RawShapes, height: int, width: int) -> np.ndarray:
    """cv2 on integer coordinates, boundary included, one call per shape (no cancelling)."""
    planes = [np.zeros((height, width), np.uint8) for _ in range(len(LESIONS) + 1)]
    for channel, shape_type, points in shapes:
        plane = planes[channel]
        xy = np.trunc(np.asarray(points, dtype=np.float64)).astype(np.int32)
        if shape_type in ("circle", "point"):
            (cx, cy), rim = points[0], points[1] if shape_type == "circle" else None
            radius = 5.0 if rim is None else math.hypot(rim[0] - cx, rim[1] - cy)
            cv2.circle(plane, (round(cx), round(cy)), round(radius), 1, -1)
        elif shape_type == "rectangle":
            cv2.rectangle(plane, tuple(xy.min(axis=0)), tuple(xy.max(axis=0)), 1, -1)
        elif shape_type in ("line", "linestrip"):
            cv2.polylines(plane, [xy], False, 1, thickness=10)
        else:
            cv2.fillPoly(plane, [xy], 1)
            cv2.polylines(plane, [xy], True, 1)
    has_ignore = any(channel == -1 for channel, _, _ in shapes)
    return _assemble(planes[:-1], planes[-1] if has_ignore else None)


def time_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and minimum wall-clock milliseconds over ``repeat`` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e3)
    return statistics.median(runs), min(runs)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compare(
    title: str, data: dict[str, Any], path: Path, label_map: dict[str, str] | None, repeat: int
) -> None:
    """Print one table: every rasterizer on the file at ``path`` (its JSON is ``data``)."""
    kwargs = {} if label_map is None else {"label_map": label_map}
    annotation = read_labelme(path, problems=ProblemLog(strict=True), **kwargs)
    assert annotation is not None and annotation.height and annotation.width
    height, width = annotation.height, annotation.width
    shapes = raw_shapes(data, annotation)
    reference = labelme_per_shape(shapes, height, width)
    labelled = int((reference != 0).any(axis=2).sum())
    candidates: list[tuple[str, Callable[[], np.ndarray], int]] = [
        ("labelme rule (default)", lambda: rasterize_annotation(annotation), repeat),
        (
            "pixel_centre rule",
            lambda: rasterize_annotation(annotation, rasterize="pixel_centre"),
            repeat,
        ),
        ("PIL alone, a canvas per label", lambda: pil_alone(shapes, height, width), repeat),
        ("cv2 alone, a plane per label", lambda: cv2_alone(shapes, height, width), repeat),
        (
            "Labelme's converter, a canvas per shape",
            lambda: labelme_per_shape(shapes, height, width),
            max(3, repeat // 5),  # the slow one
        ),
    ]
    results = []
    for name, fn, runs in candidates:
        differs = int((fn() != reference).any(axis=2).sum())
        results.append((name, *time_ms(fn, runs), differs))
    pil_median = next(median for name, median, *_ in results if name.startswith("PIL alone"))
    repaired = sum(
        len(s["points"]) > 2 and not shapely.Polygon(s["points"]).is_valid
        for s in data["shapes"]
        if (s.get("shape_type") or "polygon") == "polygon"
    )
    print(
        f"\n{title}: {width}x{height}, {len(shapes)} shapes "
        f"({repaired} self-intersecting polygons), {labelled} labelled px.\n"
    )
    print("| rasterizer | median ms | min ms | x PIL alone | px differing from Labelme |")
    print("|---|---:|---:|---:|---|")
    for name, median, best, differs in results:
        share = f"{differs} ({100 * differs / max(labelled, 1):.2f} %)"
        print(f"| {name} | {median:.1f} | {best:.1f} | {median / pil_median:.2f} | {share} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--shapes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heimed", default="00000800.json", help="HEI-MED file (227 shapes)")
    args = parser.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or (os.cpu_count() or 1)
    cv2.setNumThreads(threads)  # cv2 has its own pool; hold it to the same count
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} cores (shared), load average {load:.2f}; "
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"cv2 {cv2.getNumThreads()}. Python {platform.python_version()}, numpy {np.__version__}, "
        f"shapely {shapely.__version__}, cv2 {cv2.__version__}, Pillow {PIL.__version__}. "
        f"Median and min of {args.repeat} runs after a warm-up (Labelme's converter: fewer)."
    )

    data = synthetic_labelme(args.size, args.shapes, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.json"
        path.write_text(json.dumps(data))
        compare("Synthetic Labelme file", data, path, None, args.repeat)

    real = HEIMED / args.heimed
    if not real.is_file():
        print(f"\nHEI-MED file {real} not found: real-file table skipped.")
        return
    data = json.loads(real.read_text())
    compare(f"HEI-MED {args.heimed}", data, real, HEIMED_LABELS, args.repeat)


if __name__ == "__main__":
    main()
