"""Render the documentation figures.

``docs/synthetic_sample.png``: one synthetic eye from
:mod:`multitask_dr.datasets.synthetic` (256 px, grade 4) beside its four lesion masks, each
drawn as a coloured overlay on a dimmed copy of the photograph.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python docs/make_figures.py
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or the shared machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from multitask_dr.datasets.synthetic.grade import Phantom  # noqa: E402
from multitask_dr.datasets.synthetic.masks import lesion_masks  # noqa: E402
from multitask_dr.datasets.synthetic.render import render_phantom  # noqa: E402
from multitask_dr.lesions import GRADE_NAMES, LESION_NAMES, LESIONS, lesion_colour  # noqa: E402

DOCS = Path(__file__).resolve().parent

#: The project's one lesion colour table, in matplotlib's [0, 1] RGB.
OVERLAY_COLOURS: dict[str, tuple[float, float, float]] = {k: lesion_colour(k) for k in LESIONS}


def pick_phantom(seed: int, grade: int = 4, size: int = 256) -> Phantom:
    """The first phantom from ``seed`` upwards that shows all four lesion types."""
    for offset in range(1000):
        phantom = render_phantom(size, grade, np.random.default_rng(seed + offset))
        if {lesion.kind for lesion in phantom.lesions} == set(LESIONS):
            return phantom
    raise RuntimeError(f"no grade-{grade} phantom with all lesion types from seed {seed}")


def overlay(image: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """Dim the photograph to grey and paint ``mask`` in ``colour``, so small lesions show."""
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) / 255.0
    out = np.repeat(0.15 + 0.55 * grey, 3, axis=2)
    out[mask.astype(bool)] = colour
    return out


def synthetic_sample(out: Path, seed: int = 0) -> Path:
    """Write the phantom-and-masks figure to ``out`` (a PNG under 300 KB)."""
    phantom = pick_phantom(seed)
    masks = lesion_masks(phantom)
    counts = {kind: sum(lesion.kind == kind for lesion in phantom.lesions) for kind in LESIONS}

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.9), dpi=100)
    axes[0].imshow(phantom.image)
    axes[0].set_title(
        f"synthetic fundus, grade {phantom.grade}\n"
        f"({GRADE_NAMES[phantom.grade]}, decided by {phantom.deciding_lesion})",
        fontsize=10,
    )
    for axis, (channel, kind) in zip(axes[1:], enumerate(LESIONS), strict=True):
        axis.imshow(overlay(phantom.image, masks[..., channel], OVERLAY_COLOURS[kind]))
        axis.set_title(f"{kind} mask: {LESION_NAMES[kind]}\n{counts[kind]} instances", fontsize=10)
    for axis in axes:
        axis.set_axis_off()
    handles = [
        Patch(color=OVERLAY_COLOURS[kind], label=f"{kind} ({LESION_NAMES[kind]})")
        for kind in LESIONS
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.1, wspace=0.04)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    # An adaptive 256-colour palette keeps the figure small enough to commit.
    with Image.open(buffer) as rendered:
        rendered.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Render every documentation figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DOCS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = synthetic_sample(args.out_dir / "synthetic_sample.png", seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
