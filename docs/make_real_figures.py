"""Render the docs picture of lesions a real-trained model finds in real photographs.

Runs the real CLI: ``multitask-dr predict`` with a checkpoint trained on real lesions
(``configs/real_lesions.yaml``, e.g. the one ``benchmarks/bench_real_lesions.py --work DIR``
keeps) on the EyePACS sample (``../shared/data/eyepacs_sample``: screening photographs it never
saw, no masks), then puts the overlays of the chosen photographs side by side with their grade
and the lesion areas ``predict`` reports. Writes ``docs/real_predict_overlay.png`` (small: the
photographs are under Kaggle/EyePACS research terms and stay outside the repository).

From the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python docs/make_real_figures.py \\
        --config DIR/pretrained-seed0.yaml --config configs/eval_lesion_tta.yaml \\
        --ckpt DIR/pretrained-seed0/ckpt/best.ckpt
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from multitask_dr.cli import main as cli
from multitask_dr.lesions import LESIONS

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
EYEPACS = REPO.parent / "shared" / "data" / "eyepacs_sample"
#: Grade 4 (proliferative: haemorrhages and exudates) beside a grade-0 eye.
DEFAULT_NAMES = ("16_left", "10_right")


def predict(configs: list[Path], ckpt: Path, out: Path) -> None:
    """``multitask-dr predict`` with ``configs`` (in order) on the EyePACS sample into ``out``."""
    status = cli(
        [
            "predict",
            *(arg for c in configs for arg in ("--config", str(c))),
            "--ckpt_path",
            str(ckpt),
        ]
        + ["--data.init_args.predict_dir", str(EYEPACS), "--prediction.output_dir", str(out)]
        + ["--prediction.overlay_max_side", "640", "--trainer.logger", "false"]
    )
    if status:
        raise SystemExit(status)


def caption(name: str, grades: dict[str, str], report: dict) -> str:
    """``16_left (grade 4): EX 1.2%, HE 0.3% of the FOV`` for the lesions found."""
    found = [
        f"{lesion} {100 * report['lesions'][lesion]['area_fraction_of_fov']:.1f}%"
        for lesion in LESIONS
        if report["lesions"][lesion]["area_px"] > 0
    ]
    return f"{name} (grade {grades.get(name, '?')}): " + (", ".join(found) or "none") + " of FOV"


def panel(overlay: np.ndarray, text: str, height: int) -> np.ndarray:
    """The overlay scaled to ``height`` with a caption bar under it."""
    scale = height / overlay.shape[0]
    image = cv2.resize(overlay, (round(overlay.shape[1] * scale), height), cv2.INTER_AREA)
    bar = np.full((34, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (8, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([image, bar])


def main(argv: list[str] | None = None) -> None:
    """Predict, then compose the chosen overlays into one picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, action="append", required=True, help="the run's config (+ overlays)"
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="its best checkpoint")
    parser.add_argument("--names", nargs="+", default=list(DEFAULT_NAMES))
    parser.add_argument("--output", type=Path, default=DOCS / "real_predict_overlay.png")
    args = parser.parse_args(argv)
    with open(EYEPACS / "trainLabels.csv", newline="") as labels:
        grades = {row["image"]: row["level"] for row in csv.DictReader(labels)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        predict(args.config, args.ckpt, out)
        panels = []
        for name in args.names:
            overlay = cv2.imread(str(out / f"{name}_overlay.png"))
            report = json.loads((out / f"{name}.json").read_text())
            panels.append(panel(overlay, caption(name, grades, report), 360))
    picture = cv2.cvtColor(np.hstack(panels), cv2.COLOR_BGR2RGB)
    # 256 colours: the picture stays small in the repository.
    Image.fromarray(picture).quantize(256).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
