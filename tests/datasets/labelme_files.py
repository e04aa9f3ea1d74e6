"""Labelme test material: the real files under shared data and small hand-written documents."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image

from multitask_dr.datasets.labelme import (
    LabelmeAnnotation,
    rasterize_annotation,
    read_labelme,
)
from multitask_dr.datasets.problems import ProblemLog
from tests.conftest import SHARED_DATA, shared_path
from tests.datasets import labelme_reference

LABELME = SHARED_DATA / "labelme"


REAL_FILES = sorted(p.relative_to(LABELME).as_posix() for p in LABELME.rglob("*.json")) or [
    "missing.json"  # collected without the shared data; shared_path() skips it
]


OLDEST = "legacy_pre_61f5fee4/2011_000003_oldest_43c442db.json"


#: The 2018 file names no size and its image is not shipped; its v4 twin says 500x338.
OLDEST_SIZE = (338, 500)


#: Every label in Labelme's examples (VOC, APC and primitive names) mapped onto lesions so the
#: files rasterize fully; the mapping itself is arbitrary.
EXAMPLE_LABEL_MAP = {
    "person": "HE",
    "bottle": "EX",
    "chair": "SE",
    "sofa": "MA",
    "bus": "HE",
    "car": "EX",
    "track": "SE",
    "shelf": "SE",
    "highland_6539_self_stick_notes": "HE",
    "mead_index_cards": "EX",
    "kong_air_dog_squeakair_tennis_ball": "MA",
    "rectangle": "HE",
    "circle": "MA",
    "polygon": "EX",
    "line": "SE",
    "point": "MA",
    "line_strip": "SE",
    "octagon": "EX",
}


def raw_document(relative: str) -> dict[str, Any]:
    return json.loads(shared_path("labelme", relative).read_text())


def read_real(relative: str, problems: ProblemLog | None = None) -> LabelmeAnnotation:
    path = shared_path("labelme", relative)
    annotation = read_labelme(
        path, label_map=EXAMPLE_LABEL_MAP, problems=problems or ProblemLog(strict=True)
    )
    assert annotation is not None
    return annotation


def annotation_size(annotation: LabelmeAnnotation) -> tuple[int, int]:
    if annotation.height is None or annotation.width is None:
        return OLDEST_SIZE
    return annotation.height, annotation.width


#: Expected pixel count of each primitive: analytic where the shape allows it.
PRIMITIVE_AREAS: dict[str, Callable[[np.ndarray], float]] = {
    "rectangle": lambda p: abs(np.prod(p[1] - p[0])),
    "circle": lambda p: math.pi * float(np.sum((p[1] - p[0]) ** 2)),
    "polygon": lambda p: shapely.Polygon(p).area,
    "line": lambda p: 10.0 * float(np.hypot(*(p[1] - p[0]))),
    "point": lambda p: math.pi * 5.0**2,
    "linestrip": lambda p: 10.0 * float(np.hypot(*np.diff(p, axis=0).T).sum()),
}


GOOD_A = {"label": "HE", "points": [[2, 2], [12, 2], [12, 12], [2, 12]], "shape_type": "polygon"}


GOOD_B = {"label": "EX", "points": [[20, 20], [30, 30]], "shape_type": "rectangle"}


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_json(tmp_path: Path, shapes: list[Any], name: str = "sample.json", **top: Any) -> Path:
    data = {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": "sample.png"}
    data |= {"imageData": None, "imageHeight": 40, "imageWidth": 50} | top
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def read_one(
    tmp_path: Path, shape: dict[str, Any], rule: str = "pixel_centre", **kwargs: Any
) -> np.ndarray:
    """One shape's mask; by default the pixel-centre rule, whose counts are the areas."""
    path = write_json(tmp_path, [shape])
    annotation = read_labelme(path, problems=ProblemLog(strict=True), **kwargs)
    assert annotation is not None and len(annotation.shapes) == 1
    mask = rasterize_annotation(annotation, rasterize=rule)  # type: ignore[arg-type]
    if rule == "labelme" and not kwargs:  # the reference draws Labelme's sizes
        expected = labelme_reference.one_shape(40, 50, shape)
        assert np.array_equal(mask.max(axis=2) != 0, expected)
    return mask
