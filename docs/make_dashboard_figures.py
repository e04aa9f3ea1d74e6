"""Render the docs pictures of the W&B dashboard and of ``predict``, offline.

Runs the real CLI on the demo model: ``multitask-dr test`` with W&B offline (the
:class:`~multitask_dr.callbacks.WandbMedia` figures it logs are copied out of the offline run),
then ``multitask-dr predict`` on three test photographs (one overlay is copied). Writes
``docs/dashboard_panel.png``, ``docs/dashboard_confusion.png``, ``docs/dashboard_pr.png`` and
``docs/predict_overlay.png``.

Needs the demo checkpoint (``./scripts/demo.sh`` makes it). From the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python docs/make_dashboard_figures.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from PIL import Image  # noqa: E402

from multitask_dr.cli import main as cli  # noqa: E402

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent


def newest(folder: Path, key: str) -> Path:
    """The last logged PNG of a W&B media key (``panel_figure`` -> ``panel_figure_<step>_...``)."""
    found = sorted(p for p in folder.glob("*.png") if re.match(rf"{key}_\d+_", p.name))
    if not found:
        raise FileNotFoundError(f"no {key} image in {folder}")
    return found[-1]


def save_small(source: Path, target: Path, limit: int = 300_000) -> None:
    """Copy a PNG, palette-quantised if it would exceed ``limit`` bytes."""
    shutil.copy(source, target)
    if target.stat().st_size > limit:
        Image.open(source).convert("RGB").quantize(128).save(target, optimize=True)
    print(f"{target.relative_to(REPO)}: {target.stat().st_size / 1000:.0f} kB")


def main() -> None:
    """Run the CLI twice and copy the pictures into ``docs/``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--ckpt", default=str(REPO / "checkpoints" / "demo" / "best.ckpt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        out = Path(work)
        common = ["--config", args.config, "--ckpt_path", args.ckpt]
        common += ["--trainer.enable_progress_bar", "false"]
        test = ["test", *common, "--trainer.logger.init_args.save_dir", str(out)]
        # A panel of 4 for the picture.
        test += ["--media.num_images", "4"]
        assert cli(test) == 0
        (run,) = (out / "wandb").glob("offline-run-*")
        media = run / "files" / "media" / "images" / "test"
        for key, name in (
            ("panel_figure", "dashboard_panel.png"),
            ("confusion_figure", "dashboard_confusion.png"),
            ("pr_figure", "dashboard_pr.png"),
        ):
            save_small(newest(media, key), DOCS / name)

        photos = out / "photos"
        photos.mkdir()
        test_images = sorted(
            (REPO / "data" / "synthetic" / "tjdr" / "test" / "image").glob("*.png")
        )
        for image in test_images[:3]:
            shutil.copy(image, photos / image.name)
        predict = ["predict", *common, "--data.predict_dir", str(photos)]
        predict += [
            "--prediction.output_dir",
            str(out / "predictions"),
            "--trainer.logger",
            "false",
        ]
        assert cli(predict) == 0
        # Show the photograph with the most predicted lesion area.
        reports = sorted((out / "predictions").glob("*.json"))
        report = max(
            reports,
            key=lambda r: sum(v["area_px"] for v in json.loads(r.read_text())["lesions"].values()),
        )
        save_small(report.with_name(f"{report.stem}_overlay.png"), DOCS / "predict_overlay.png")
        print(report.read_text())


if __name__ == "__main__":
    main()
