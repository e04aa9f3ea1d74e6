"""Synthetic fundus photographs with exact lesion polygons, written in the real dataset formats.

Every loader in the project can be exercised end to end without the real data: this module
draws fundus-like images (black surround, circular field of view, vignetted orange-red retina,
yellowish optic disc, darker macula, branching vessels, texture) with lesions painted from
shapely polygons, and writes them as

* a TJDR release tree (:func:`write_tjdr`): ``{train,test}/image/NNN.png``, palette
  ``{train,test}/annotation/NNN.png`` (0 bg, 1 EX, 2 HE, 3 MA, 4 SE), optional Labelme 5.x
  JSON beside each image, and ``grades.csv`` (not part of the release);
* RetinaMNIST files (:func:`write_retinamnist`) with medmnist's names, keys, dtypes and shapes.

Lesion appearance: MA tiny dark-red discs (radius 0.4-0.8 % of the image size, never below
1.5 px), HE larger dark-red irregular blots (some flame-shaped), EX bright yellow small
irregular patches in clusters, SE pale whitish blurred ("fluffy") spots. Lesions lie entirely
inside the field of view and off the optic disc. Every lesion is written as a Labelme shape (MA
a circle, the others polygons), and its mask is that shape under the default ``labelme`` rule
(:func:`~multitask_dr.datasets.rasterize.rasterize_labelme`): the image is painted from these
masks, the palette PNG is them collapsed by :data:`~multitask_dr.lesions.RELEASE_PRIORITY`,
and reading the JSON back gives them again, so image, PNG and JSON agree pixel for pixel.

Grade rule (ICDR-like; evaluated top-down, the first line that matches decides)::

    1. n_SE >= 3                                   -> grade 4, deciding lesion "SE"
    2. HE present in all 4 retinal quadrants       -> grade 3, deciding lesion "HE"
    3. any HE, EX or SE                            -> grade 2, deciding lesion = the type among
                                                      HE/EX/SE with the most instances
                                                      (ties broken HE > EX > SE)
    4. any MA                                      -> grade 1, deciding lesion "MA"
    5. no lesion                                   -> grade 0, deciding lesion None

Counts are numbers of lesion instances (one polygon or circle each). Quadrants are cut by the
vertical and horizontal lines through the field-of-view centre ``(cx, cy)`` and a lesion
belongs to the quadrant of its centroid ``(x, y)``: right when ``x >= cx``, lower when
``y >= cy`` (image coordinates, ``y`` grows downwards), so a centroid exactly on a dividing
line counts as right / lower.

Determinism: each image draws from its own generator seeded by ``(seed, dataset, split,
index)`` (:func:`image_rng`), so the same seed gives byte-identical files and writing more
images never changes the earlier ones.

Command line::

    python -m multitask_dr.datasets.synthetic --out data/synthetic --seed 0
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from PIL import Image
from shapely.geometry import Polygon

from multitask_dr.datasets.rasterize import LabelmeDrawing, disc, rasterize_labelme
from multitask_dr.datasets.retinamnist import SIZES, npz_path
from multitask_dr.datasets.tjdr import channels_to_release_mask, release_palette_image
from multitask_dr.lesions import LESIONS, NUM_GRADES

__all__ = [
    "DEFAULT_GRADE_PROBS",
    "Lesion",
    "Phantom",
    "grade_from_lesions",
    "image_rng",
    "lesion_mask",
    "lesion_masks",
    "main",
    "release_mask",
    "render_phantom",
    "retinamnist_filename",
    "sample_grade",
    "write_retinamnist",
    "write_synthetic",
    "write_tjdr",
]

#: Default grade distribution, close to RetinaMNIST's (train counts 486/128/206/194/66).
DEFAULT_GRADE_PROBS: Final[tuple[float, ...]] = (0.43, 0.12, 0.19, 0.18, 0.08)

#: Sizes medmnist publishes RetinaMNIST at.
RETINAMNIST_SIZES: Final[tuple[int, ...]] = SIZES

#: RetinaMNIST phantoms are rendered once at this size and area-resized to the others.
RETINAMNIST_RENDER_SIZE: Final[int] = 224

#: Below this the anatomy (disc, vessels, 1.5 px microaneurysms) no longer fits.
MIN_SIZE: Final[int] = 32

#: Labelme version string written into the JSON files.
LABELME_VERSION: Final[str] = "5.7.0"

#: Smallest microaneurysm radius in pixels, whatever the image size.
MIN_MA_RADIUS: Final[float] = 1.5

#: Tie-break order of the grade-2 deciding lesion.
_GRADE2_ORDER: Final[tuple[str, ...]] = ("HE", "EX", "SE")

#: Labelme circles are converted with this many segments per quarter circle.

#: Numbered files this module owns inside ``image/`` and ``annotation/`` (stale ones are removed).
_OWNED_FILE = re.compile(r"^\d+\.(png|json)$")

FieldOfView = tuple[float, float, float]


# --------------------------------------------------------------------------------------------
# Data model and grade rule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lesion:
    """One lesion instance.

    Attributes:
        kind: ``"MA"``, ``"HE"``, ``"EX"`` or ``"SE"``.
        geometry: Valid polygon in pixel coordinates (``x`` = column, ``y`` = row; pixel
            ``(r, c)`` covers ``[c, c+1) x [r, r+1)``).
        circle: For lesions annotated as Labelme circles (microaneurysms), the two points Labelme
            stores, ``((cx, cy), (rim_x, rim_y))``; ``geometry`` is then exactly
            ``rasterize.disc(c, r)`` (area-exact) with ``r`` their distance. ``None`` for polygons.
    """

    kind: str
    geometry: Polygon
    circle: tuple[tuple[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in LESIONS:
            raise ValueError(f"lesion kind must be one of {LESIONS}, got {self.kind!r}")
        if not isinstance(self.geometry, Polygon) or self.geometry.is_empty:
            raise ValueError(f"{self.kind} lesion geometry must be a non-empty Polygon")
        if not self.geometry.is_valid:
            raise ValueError(f"{self.kind} lesion polygon is not valid: {self.geometry.wkt[:80]}")

    @classmethod
    def from_circle(cls, kind: str, centre: tuple[float, float], radius: float) -> Lesion:
        """A disc lesion whose Labelme circle (centre + rim point) reproduces it exactly.

        The centre is rounded to 2 decimals and the rim point placed on the same row, so the
        radius a reader recomputes from the two JSON points (``hypot(dx, 0)``) is exactly the
        radius of the stored geometry.

        Args:
            kind: Lesion kind.
            centre: ``(x, y)`` in pixels.
            radius: Radius in pixels (rounded up to 2 decimals).

        Returns:
            The lesion, with :attr:`circle` set.
        """
        cx, cy = round(float(centre[0]), 2), round(float(centre[1]), 2)
        rim_x = round(cx + math.ceil(radius * 100.0) / 100.0, 2)
        exact = math.hypot(rim_x - cx, 0.0)
        # The Labelme reader turns circles into discs the same way, so even the pixel_centre
        # rule reads back this very geometry from the JSON.
        geometry = disc(cx, cy, exact)
        return cls(kind, geometry, ((cx, cy), (rim_x, cy)))

    @property
    def centroid(self) -> tuple[float, float]:
        """``(x, y)`` centroid of the geometry, the point the quadrant rule looks at."""
        point = self.geometry.centroid
        return float(point.x), float(point.y)


@dataclass
class Phantom:
    """One synthetic eye.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB photograph.
        lesions: Lesion instances in painting order (later ones are drawn on top).
        grade: ICDR-like grade 0-4, equal to :func:`grade_from_lesions` of ``lesions``.
        deciding_lesion: The lesion type that decided the grade (``None`` for grade 0).
        fov: Field of view ``(centre x, centre y, radius)`` in pixels; pixels whose centre lies
            at distance ``>= radius`` are exactly 0.
        optic_disc: ``(centre x, centre y, radius)`` of the optic disc.
        fovea: ``(x, y)`` of the fovea (centre of the darker macula).
    """

    image: np.ndarray
    lesions: list[Lesion]
    grade: int
    deciding_lesion: str | None
    fov: FieldOfView
    optic_disc: tuple[float, float, float] | None = None
    fovea: tuple[float, float] | None = None


def quadrant(x: float, y: float, fov: Sequence[float]) -> int:
    """Retinal quadrant of a point: ``2 * lower + right`` (0 upper-left ... 3 lower-right).

    A point on a dividing line counts as right / lower (see the module docstring).
    """
    return 2 * int(y >= fov[1]) + int(x >= fov[0])


def grade_from_lesions(lesions: Sequence[Lesion], fov: Sequence[float]) -> tuple[int, str | None]:
    """Apply the grade rule of the module docstring.

    Args:
        lesions: Lesion instances.
        fov: ``(centre x, centre y, radius)``; only the centre is used, to cut the quadrants.

    Returns:
        ``(grade, deciding lesion type or None)``.
    """
    counts = Counter(lesion.kind for lesion in lesions)
    if counts["SE"] >= 3:
        return 4, "SE"
    he_quadrants = {quadrant(*lesion.centroid, fov) for lesion in lesions if lesion.kind == "HE"}
    if len(he_quadrants) == 4:
        return 3, "HE"
    present = [kind for kind in _GRADE2_ORDER if counts[kind] > 0]
    if present:
        # max() keeps the first of equal counts, and _GRADE2_ORDER is the tie-break order.
        return 2, max(present, key=lambda kind: counts[kind])
    if counts["MA"] > 0:
        return 1, "MA"
    return 0, None


# --------------------------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------------------------


def image_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image, independent of how many images are written.

    Args:
        seed: Non-negative user seed.
        dataset: ``"tjdr"`` or ``"retinamnist"`` (any string; hashed with CRC-32, which unlike
            ``hash()`` does not change between Python processes).
        split: Split name, hashed the same way.
        index: 0-based image index within the split.

    Returns:
        A fresh ``numpy.random.Generator``.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    words = [seed, zlib.crc32(dataset.encode()), zlib.crc32(split.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(words))


def check_grade_probs(grade_probs: Sequence[float] | None) -> np.ndarray:
    """Validate a grade distribution and normalise it to sum to 1.

    Args:
        grade_probs: Five non-negative weights, or ``None`` for :data:`DEFAULT_GRADE_PROBS`.

    Returns:
        ``(5,)`` float64 probabilities.
    """
    probs = np.asarray(DEFAULT_GRADE_PROBS if grade_probs is None else grade_probs, dtype=float)
    if probs.shape != (NUM_GRADES,):
        raise ValueError(f"grade_probs needs {NUM_GRADES} values, got {probs.tolist()}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"grade_probs must be non-negative and not all 0, got {probs.tolist()}")
    return probs / probs.sum()


def sample_grade(rng: np.random.Generator, grade_probs: Sequence[float] | None = None) -> int:
    """Draw one grade from ``grade_probs`` (the writers call this before :func:`render_phantom`)."""
    return int(rng.choice(NUM_GRADES, p=check_grade_probs(grade_probs)))


# --------------------------------------------------------------------------------------------
# Lesion sampling
# --------------------------------------------------------------------------------------------


class _Placer:
    """Draws lesion centres inside the field of view, off the optic disc, maybe in a quadrant."""

    def __init__(
        self,
        rng: np.random.Generator,
        fov: FieldOfView,
        disc: tuple[float, float, float],
    ) -> None:
        self.rng = rng
        self.fov = fov
        self.disc = disc
        self.taken: dict[str, list[tuple[float, float, float]]] = {}

    def centre(
        self,
        kind: str,
        extent: float,
        *,
        quadrant_id: int | None = None,
        near: tuple[float, float] | None = None,
        spread: float = 0.0,
        tries: int = 400,
    ) -> tuple[float, float]:
        """A centre such that a lesion reaching ``extent`` px from it satisfies the constraints.

        Hard constraints: the whole lesion lies >= 2 px inside the FOV edge, does not touch the
        optic disc, and (with ``quadrant_id``) lies entirely in that quadrant, so its centroid
        does too. Soft constraint, dropped after half the tries: no overlap with an earlier
        lesion of the same kind, so instance counts stay visible.
        """
        cx, cy, radius = self.fov
        dx, dy, dr = self.disc
        limit = radius - extent - 2.0
        taken = self.taken.setdefault(kind, [])
        for attempt in range(tries):
            if near is None:
                rho = limit * math.sqrt(self.rng.random())
                phi = 2.0 * math.pi * self.rng.random()
                x, y = cx + rho * math.cos(phi), cy + rho * math.sin(phi)
            else:
                offset = self.rng.normal(0.0, spread, 2)
                x, y = near[0] + float(offset[0]), near[1] + float(offset[1])
            if math.hypot(x - cx, y - cy) > limit:
                continue
            if math.hypot(x - dx, y - dy) < dr + extent + 1.0:
                continue
            if quadrant_id is not None:
                margin = extent + 0.5
                if quadrant(x, y, self.fov) != quadrant_id:
                    continue
                if abs(x - cx) < margin or abs(y - cy) < margin:
                    continue
            if attempt < tries // 2 and any(
                math.hypot(x - ox, y - oy) < extent + oe + 1.0 for ox, oy, oe in taken
            ):
                continue
            taken.append((x, y, extent))
            return x, y
        raise RuntimeError(
            f"could not place a {kind} lesion of extent {extent:.1f} px in {tries} tries "
            f"(fov={self.fov}, quadrant={quadrant_id})"
        )


def _star_offsets(
    rng: np.random.Generator,
    radius: float,
    n_vertices: int,
    roughness: float,
    elongation: float = 1.0,
) -> np.ndarray:
    """Vertices of an irregular star-shaped blob around the origin, ``(n, 2)``.

    Angles stay strictly increasing and radii positive, so the polygon is simple (valid), and
    an area-preserving stretch plus rotation keeps it so.
    """
    step = 2.0 * math.pi / n_vertices
    theta = np.arange(n_vertices) * step + rng.uniform(-0.3, 0.3, n_vertices) * step
    wobble = np.zeros(n_vertices)
    for k in (2, 3, 4):
        wobble += roughness / k * rng.normal() * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    wobble += 0.35 * roughness * rng.normal(size=n_vertices)
    r = radius * np.clip(1.0 + wobble, 0.55, 1.6)
    stretch = math.sqrt(elongation)
    pts = np.stack([r * np.cos(theta) * stretch, r * np.sin(theta) / stretch], axis=1)
    angle = rng.uniform(0, math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return pts @ rot.T


def _polygon_lesion(kind: str, centre: tuple[float, float], offsets: np.ndarray) -> Lesion:
    # Coordinates are rounded once, here, so the Labelme JSON (2 decimals) is the geometry.
    points = np.round(np.asarray(centre) + offsets, 2)
    return Lesion(kind, Polygon(points.tolist()))


def _blob_lesion(
    placer: _Placer,
    kind: str,
    radius: float,
    *,
    n_vertices: int,
    roughness: float,
    elongation: float = 1.0,
    quadrant_id: int | None = None,
    near: tuple[float, float] | None = None,
    spread: float = 0.0,
) -> Lesion:
    offsets = _star_offsets(placer.rng, radius, n_vertices, roughness, elongation)
    extent = float(np.hypot(offsets[:, 0], offsets[:, 1]).max()) + 0.01
    centre = placer.centre(kind, extent, quadrant_id=quadrant_id, near=near, spread=spread)
    return _polygon_lesion(kind, centre, offsets)


def _make_ma(placer: _Placer, size: int) -> Lesion:
    radius = max(MIN_MA_RADIUS, size * placer.rng.uniform(0.004, 0.008))
    centre = placer.centre("MA", radius + 0.01)
    return Lesion.from_circle("MA", centre, radius)


def _make_he(placer: _Placer, size: int, quadrant_id: int | None) -> Lesion:
    rng = placer.rng
    radius = max(2.5, size * rng.uniform(0.010, 0.022))
    # About a third are flame-shaped (nerve-fibre-layer) haemorrhages, the rest blots.
    elongation = rng.uniform(1.8, 2.8) if rng.random() < 0.35 else rng.uniform(1.0, 1.35)
    return _blob_lesion(
        placer,
        "HE",
        radius,
        n_vertices=14,
        roughness=0.22,
        elongation=elongation,
        quadrant_id=quadrant_id,
    )


def _make_ex_cluster(
    placer: _Placer, size: int, n_patches: int, fovea: tuple[float, float]
) -> list[Lesion]:
    rng = placer.rng
    spread = size * rng.uniform(0.018, 0.04)
    # Hard exudates gather around the macula more often than not.
    if rng.random() < 0.6:
        hub = placer.centre("EX-hub", 2.0 * spread, near=fovea, spread=0.3 * placer.fov[2])
    else:
        hub = placer.centre("EX-hub", 2.0 * spread)
    patches = []
    for _ in range(n_patches):
        radius = max(1.5, size * rng.uniform(0.005, 0.013))
        patches.append(
            _blob_lesion(
                placer,
                "EX",
                radius,
                n_vertices=10,
                roughness=0.3,
                elongation=rng.uniform(1.0, 1.6),
                near=hub,
                spread=spread,
            )
        )
    return patches


def _make_se(placer: _Placer, size: int) -> Lesion:
    rng = placer.rng
    radius = max(2.5, size * rng.uniform(0.02, 0.033))
    return _blob_lesion(
        placer, "SE", radius, n_vertices=16, roughness=0.15, elongation=rng.uniform(1.1, 1.8)
    )


def _split_counts(total: int, parts: int, rng: np.random.Generator) -> list[int]:
    """Split ``total`` into ``parts`` positive counts (``parts <= total``)."""
    cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False)) if parts > 1 else []
    bounds = [0, *map(int, cuts), total]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _plan(grade: int, rng: np.random.Generator) -> tuple[list[int | None], int, int, int]:
    """Lesion counts consistent with ``grade``.

    Returns:
        ``(quadrant of each HE or None for anywhere, n_EX, n_SE, n_MA)``.
    """
    he: list[int | None] = []
    n_ex = n_se = n_ma = 0
    if grade == 1:
        n_ma = int(rng.integers(1, 9))
    elif grade == 2:
        # One type clearly dominant (>= 2 more instances than any other, or alone), so the
        # deciding lesion does not hang on a tie-break.
        dominant = str(rng.choice(_GRADE2_ORDER, p=[0.45, 0.4, 0.15]))
        if dominant == "HE":
            n_he = int(rng.integers(2, 7))
            n_ex = int(rng.integers(0, n_he - 1))
            n_se = int(rng.integers(0, min(2, n_he - 2) + 1))
        elif dominant == "EX":
            n_ex = int(rng.integers(3, 16))
            n_he = int(rng.integers(0, min(4, n_ex - 2) + 1))
            n_se = int(rng.integers(0, min(2, n_ex - 2) + 1))
        else:
            n_he, n_se = 0, int(rng.integers(1, 3))
        # HE kept to at most 3 quadrants, or the eye would be grade 3.
        allowed = rng.choice(4, int(rng.integers(1, 4)), replace=False)
        he = [int(rng.choice(allowed)) for _ in range(n_he)]
    elif grade == 3:
        he = [q for q in range(4) for _ in range(int(rng.integers(1, 4)))]
        n_ex = int(rng.integers(0, 12)) if rng.random() < 0.6 else 0
        n_se = int(rng.integers(0, 3))
    elif grade == 4:
        n_se = int(rng.integers(3, 7))
        he = [None] * int(rng.integers(0, 10))
        n_ex = int(rng.integers(0, 13)) if rng.random() < 0.6 else 0
    if grade >= 2 and rng.random() < 0.8:
        n_ma = int(rng.integers(1, 16))
    return he, n_ex, n_se, n_ma


def _sample_lesions(
    rng: np.random.Generator,
    size: int,
    grade: int,
    fov: FieldOfView,
    disc: tuple[float, float, float],
    fovea: tuple[float, float],
) -> list[Lesion]:
    he, n_ex, n_se, n_ma = _plan(grade, rng)
    placer = _Placer(rng, fov, disc)
    # Painting order: deep haemorrhages, then microaneurysms, exudates, superficial
    # cotton-wool spots on top (also the winner where the release mask must pick one label).
    lesions = [_make_he(placer, size, q) for q in he]
    lesions += [_make_ma(placer, size) for _ in range(n_ma)]
    if n_ex:
        n_clusters = int(rng.integers(1, min(3, n_ex) + 1))
        for n_patches in _split_counts(n_ex, n_clusters, rng):
            lesions += _make_ex_cluster(placer, size, n_patches, fovea)
    lesions += [_make_se(placer, size) for _ in range(n_se)]
    return lesions


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _sample_anatomy(
    rng: np.random.Generator, size: int
) -> tuple[FieldOfView, tuple[float, float, float], tuple[float, float]]:
    radius = size * rng.uniform(0.445, 0.475)
    cx = size / 2 + size * rng.uniform(-0.01, 0.01)
    cy = size / 2 + size * rng.uniform(-0.01, 0.01)
    # +1: fovea right of the disc (a left eye as photographed), -1: a right eye.
    side = 1.0 if rng.random() < 0.5 else -1.0
    fovea = (cx + side * rng.uniform(0.0, 0.08) * radius, cy + rng.uniform(-0.05, 0.05) * radius)
    # The disc sits about 2.5 disc diameters nasal to the fovea and slightly above it.
    disc_r = radius * rng.uniform(0.145, 0.175)
    disc_x = fovea[0] - side * rng.uniform(0.62, 0.72) * radius
    disc_y = fovea[1] - rng.uniform(0.0, 0.08) * radius
    fov = (float(cx), float(cy), float(radius))
    return fov, (float(disc_x), float(disc_y), float(disc_r)), (float(fovea[0]), float(fovea[1]))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about ``size / cells`` pixels wide."""
    coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length: float,
    step: float,
    curvature: float,
    wobble: float,
    inside: float,
    centre: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Random walk with drifting heading; stops on leaving the disc ``|p - centre| < inside``.

    Returns:
        Points ``(n, 2)`` and the heading at each point ``(n,)``.
    """
    n_steps = max(2, int(length / step))
    turns = curvature * step + rng.normal(0.0, wobble, n_steps)
    headings = heading + np.concatenate([[0.0], np.cumsum(turns)])
    moves = step * np.stack([np.cos(headings[1:]), np.sin(headings[1:])], axis=1)
    points = start + np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    outside = np.flatnonzero(np.hypot(*(points - centre).T) > inside)
    end = int(outside[0]) + 1 if outside.size else len(points)
    return points[:end], headings[:end]


def _vessel_layer(
    rng: np.random.Generator,
    size: int,
    fov: FieldOfView,
    disc: tuple[float, float, float],
    fovea: tuple[float, float],
) -> np.ndarray:
    """Darkness map of the vessel tree in ``[0, 1]``, ``(size, size)`` float32.

    Drawn with anti-aliased ``cv2.polylines`` on a 2x canvas, then area-downsampled, so
    sub-pixel widths and tapering survive at small sizes.
    """
    scale = 2
    canvas = np.zeros((size * scale, size * scale), np.uint8)
    cx, cy, radius = fov
    centre = np.array([cx, cy])
    step = max(1.5, 0.016 * size)
    width0 = 0.011 * size
    segments: list[tuple[np.ndarray, float, float, float]] = []

    def grow(
        start: np.ndarray,
        heading: float,
        length: float,
        curvature: float,
        width: float,
        darkness: float,
        depth: int,
    ) -> None:
        points, headings = _walk(
            rng, start, heading, length, step, curvature, 0.07, radius * 1.02, centre
        )
        segments.append((points, width, width * 0.35, darkness))
        if depth == 0 or len(points) < 6:
            return
        index = int(rng.integers(3, 8))
        while index < len(points) - 3:
            frac = index / (len(points) - 1)
            branch_side = 1.0 if rng.random() < 0.5 else -1.0
            grow(
                points[index],
                headings[index] + branch_side * rng.uniform(0.5, 1.1),
                length * (1.0 - frac) * rng.uniform(0.4, 0.75),
                rng.normal(0.0, 1.0) / radius,
                width * (1.0 - 0.5 * frac) * rng.uniform(0.5, 0.7),
                darkness * 0.85,
                depth - 1,
            )
            index += int(rng.integers(7, 14))

    side = 1.0 if fovea[0] >= disc[0] else -1.0
    origin = np.array(disc[:2])
    # (heading from the temporal axis in degrees, curvature in rad per FOV radius, length in
    # FOV radii, width factor, darkness, branching depth): veins darker and wider than their
    # arteries; the temporal arcades bend around the macula, nasal vessels run fairly straight.
    trunks = []
    for sign in (-1.0, 1.0):  # superior (-1, y grows downwards) and inferior
        trunks.append((sign * rng.uniform(55, 72), -sign * rng.uniform(0.7, 1.1), 1.4, 1.0, 1.0, 2))
        trunks.append((sign * rng.uniform(42, 60), -sign * rng.uniform(0.6, 1.0), 1.3, 0.7, 0.7, 2))
        trunks.append((sign * rng.uniform(110, 140), rng.normal(0, 0.3), 0.8, 0.8, 0.9, 1))
        trunks.append((sign * rng.uniform(100, 125), rng.normal(0, 0.3), 0.8, 0.55, 0.65, 1))
        trunks.append((sign * rng.uniform(5, 20), rng.normal(0, 0.5), 0.4, 0.35, 0.6, 0))
    trunks.append((180.0 + rng.normal(0, 10), rng.normal(0, 0.3), 0.5, 0.45, 0.6, 1))
    for angle, curvature, length, width, darkness, depth in trunks:
        # Mirror the canonical (fovea to the right) headings for the other eye.
        theta = math.radians(angle)
        heading = theta if side > 0 else math.pi - theta
        start = origin + rng.normal(0.0, 0.12 * disc[2], 2)
        grow(
            start,
            heading,
            length * radius,
            side * curvature / radius,
            width * width0,
            darkness,
            depth,
        )

    shift = 2  # cv2 fixed-point: coordinates in 1/4 canvas pixels
    for points, width_start, width_end, darkness in segments:
        fixed = np.round(points * scale * (1 << shift)).astype(np.int32)
        n = len(fixed)
        for lo in range(0, n - 1, 3):
            hi = min(n, lo + 4)
            frac = lo / max(1, n - 1)
            width = width_start + (width_end - width_start) * frac
            thickness = max(1, round(width * scale))
            # Thin vessels are fainter (they do not cover a whole pixel) and every vessel fades
            # out over its last stretch instead of ending bluntly.
            shade = darkness * min(1.0, 0.3 + width / max(width0, 1e-6))
            shade *= min(1.0, 0.2 + (1.0 - frac) / 0.3)
            cv2.polylines(
                canvas, [fixed[lo:hi]], False, int(255 * shade), thickness, cv2.LINE_AA, shift
            )
    layer = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return layer.astype(np.float32) / 255.0


def _window(geometry: Polygon, pad: int, size: int) -> tuple[slice, slice]:
    minx, miny, maxx, maxy = geometry.bounds
    r0, c0 = max(0, int(miny) - pad), max(0, int(minx) - pad)
    r1, c1 = min(size, int(math.ceil(maxy)) + pad + 1), min(size, int(math.ceil(maxx)) + pad + 1)
    return slice(r0, r1), slice(c0, c1)


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)


def _paint_lesions(
    rng: np.random.Generator,
    image: np.ndarray,
    illumination: np.ndarray,
    lesions: Sequence[Lesion],
) -> None:
    """Paint each lesion from its rasterized polygon, in place, in list order."""
    size = image.shape[0]
    for lesion in lesions:
        kind = lesion.kind
        if kind == "SE":
            minx, miny, maxx, maxy = lesion.geometry.bounds
            sigma = max(0.8, min(maxx - minx, maxy - miny) / 6.0)
        else:
            sigma = 0.55
        pad = int(math.ceil(3 * sigma)) + 1
        rows, cols = _window(lesion.geometry, pad, size)
        mask = lesion_mask(lesion, size, size)[rows, cols].astype(np.float32)
        patch = image[rows, cols]
        if kind in ("MA", "HE"):
            # Blood: multiplicative darkening keeps the local vignetting; green drops most,
            # which turns the orange background dark red.
            strength = rng.uniform(0.8, 1.0)
            alpha = (np.clip(_blur(mask, sigma), 0, 1) * 0.95 * strength)[..., None]
            patch *= 1.0 - alpha * np.array([0.4, 0.8, 0.72], np.float32)
        elif kind == "EX":
            light = illumination[rows, cols][..., None]
            colour = np.array([255, 232, 110], np.float32) * rng.uniform(0.9, 1.0)
            colour = colour * (0.72 + 0.28 * light)
            alpha = (np.clip(_blur(mask, sigma), 0, 1) * rng.uniform(0.8, 0.95))[..., None]
            patch[:] = patch * (1.0 - alpha) + colour * alpha
        else:
            # Fluffy: a blurred copy of the polygon, cut back so the visible spot fades out at
            # its outline instead of spilling past it, with some inner texture.
            light = illumination[rows, cols][..., None]
            colour = np.array([238, 222, 180], np.float32) * (0.75 + 0.25 * light)
            soft = np.clip(1.6 * _blur(mask, sigma) - 0.45, 0, 1)
            texture = 0.7 + 0.3 * _blur(rng.random(mask.shape, dtype=np.float32), 1.0)
            alpha = (_blur(soft * texture, 0.8) * rng.uniform(0.45, 0.65))[..., None]
            patch[:] = patch * (1.0 - alpha) + colour * alpha


def _box(
    x: float, y: float, half: float, coords: np.ndarray
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Window of ``coords`` around ``(x, y)`` (half-width ``half``) and its pixel centres.

    Local effects (disc, macula) are computed in such windows only: full-image float
    passes are what a phantom's rendering time is made of.
    """
    size = len(coords)
    r0, r1 = max(0, int(y - half)), min(size, int(math.ceil(y + half)) + 1)
    c0, c1 = max(0, int(x - half)), min(size, int(math.ceil(x + half)) + 1)
    return (slice(r0, r1), slice(c0, c1)), coords[None, c0:c1], coords[r0:r1, None]


def _render_image(
    rng: np.random.Generator,
    size: int,
    fov: FieldOfView,
    disc: tuple[float, float, float],
    fovea: tuple[float, float],
    lesions: Sequence[Lesion],
) -> np.ndarray:
    cx, cy, radius = fov
    coords = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    xs, ys = coords[None, :], coords[:, None]
    dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)

    # Retina: per-eye pigmentation and hue (RetinaMNIST's eyes run from orange to brownish),
    # flash vignetting, an uneven illumination gradient and choroidal texture.
    base = np.array(
        [rng.uniform(180, 222), rng.uniform(70, 104), rng.uniform(14, 36)], np.float32
    ) * np.float32(rng.uniform(0.8, 1.08))
    tilt = rng.uniform(0, 2 * math.pi)
    gradient = ((xs - cx) * math.cos(tilt) + (ys - cy) * math.sin(tilt)) / radius
    rel2 = (dist / radius) ** 2
    illumination = (
        1.0
        - np.float32(rng.uniform(0.35, 0.55)) * rel2
        + np.float32(rng.uniform(0.0, 0.08)) * gradient
        + 0.04 * _smooth_noise(rng, size, 5)
    )
    texture = 1.0 + 0.03 * _smooth_noise(rng, size, max(4, size // 8))
    image = base * (illumination * texture)[..., None]

    # Macula: darker and browner (more green/blue absorbed) around the fovea.
    sigma = radius * rng.uniform(0.1, 0.14)
    window, wx, wy = _box(*fovea, 3.5 * sigma, coords)
    macula = np.exp(-((wx - fovea[0]) ** 2 + (wy - fovea[1]) ** 2) / (2 * sigma**2))
    depth = rng.uniform(0.7, 1.0)
    image[window] *= 1.0 - depth * macula[..., None] * np.array([0.28, 0.42, 0.35], np.float32)

    # Optic disc: a peripapillary glow, the yellowish rim and a paler cup offset temporally.
    dx, dy, dr = disc
    side = 1.0 if fovea[0] >= dx else -1.0
    window, wx, wy = _box(dx, dy, 5.0 * dr, coords)
    patch = image[window]
    rho = np.sqrt(((wx - dx) / (0.95 * dr)) ** 2 + ((wy - dy) / (1.05 * dr)) ** 2)
    patch *= (1.0 + 0.25 * np.exp(-(rho**2) / 2.4))[..., None]
    rim = np.clip((1.0 - rho) / 0.25, 0.0, 1.0)[..., None]
    disc_colour = np.array([250, 206, 96], np.float32) * np.float32(rng.uniform(0.9, 1.0))
    patch[:] = patch * (1.0 - rim) + disc_colour * rim
    cup_r = dr * rng.uniform(0.35, 0.5)
    cup_rho = np.sqrt((wx - dx - side * 0.15 * dr) ** 2 + (wy - dy) ** 2) / cup_r
    cup = (np.clip((1.0 - cup_rho) / 0.6, 0.0, 1.0) * 0.8)[..., None]
    patch[:] = patch * (1.0 - cup) + np.array([254, 236, 170], np.float32) * cup

    vessels = _vessel_layer(rng, size, fov, disc, fovea)
    # Foveal avascular zone: capillaries stop short of the fovea.
    faz = 0.09 * radius
    window, wx, wy = _box(*fovea, 4.0 * faz, coords)
    vessels[window] *= 1.0 - np.exp(-((wx - fovea[0]) ** 2 + (wy - fovea[1]) ** 2) / (2 * faz**2))
    image *= 1.0 - vessels[..., None] * np.array([0.36, 0.7, 0.62], np.float32)

    _paint_lesions(rng, image, illumination, lesions)

    image += rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(1.6)
    # Field of view last, so every pixel whose centre is outside the circle is exactly 0.
    fov_alpha = np.clip(radius - dist, 0.0, 1.0)
    image *= fov_alpha[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_phantom(size: int, grade: int, rng: np.random.Generator) -> Phantom:
    """Render one synthetic eye whose lesions give ``grade`` under the grade rule.

    Args:
        size: Image side in pixels (square), at least :data:`MIN_SIZE`.
        grade: Requested grade 0-4.
        rng: Source of randomness; the result is a pure function of its state.

    Returns:
        The phantom; its ``grade`` and ``deciding_lesion`` are checked against
        :func:`grade_from_lesions`.

    Raises:
        ValueError: On a size below :data:`MIN_SIZE` or a grade outside 0-4.
        AssertionError: If the sampled lesions do not give the requested grade (a bug).
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")
    if not 0 <= grade < NUM_GRADES:
        raise ValueError(f"grade must be in 0-{NUM_GRADES - 1}, got {grade}")
    fov, disc, fovea = _sample_anatomy(rng, size)
    lesions = _sample_lesions(rng, size, grade, fov, disc, fovea)
    got, deciding = grade_from_lesions(lesions, fov)
    if got != grade:
        # Not a bare assert: this must hold under ``python -O`` too.
        counts = Counter(lesion.kind for lesion in lesions)
        raise AssertionError(f"sampled lesions {dict(counts)} give grade {got}, not {grade}")
    image = _render_image(rng, size, fov, disc, fovea, lesions)
    return Phantom(image, lesions, grade, deciding, fov, disc, fovea)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def _drawing(lesion: Lesion) -> LabelmeDrawing:
    """The lesion as the Labelme shape written to the JSON, ready to draw."""
    shape = labelme_shape(lesion)
    points = np.asarray(shape["points"], dtype=np.float64)
    return LabelmeDrawing(LESIONS.index(lesion.kind), str(shape["shape_type"]), points)


def lesion_mask(lesion: Lesion, height: int, width: int) -> np.ndarray:
    """One lesion's pixels: its Labelme shape under the default (``labelme``) rule.

    Returns:
        ``(H, W)`` bool.
    """
    drawing = _drawing(lesion)._replace(channel=0)
    return rasterize_labelme([drawing], height, width, 1)[..., 0] == 1


def release_mask(phantom: Phantom) -> np.ndarray:
    """TJDR release index mask (0 bg, 1 EX, 2 HE, 3 MA, 4 SE) of :func:`lesion_masks`.

    Where lesions overlap, :data:`~multitask_dr.lesions.RELEASE_PRIORITY` decides, as it does
    for every one-index-per-pixel file the project writes.

    Returns:
        ``(H, W)`` uint8.
    """
    return channels_to_release_mask(lesion_masks(phantom))


def lesion_masks(phantom: Phantom) -> np.ndarray:
    """Per-lesion binary masks in :data:`~multitask_dr.lesions.LESIONS` order (overlaps kept).

    Each is the union of that lesion type's Labelme shapes under the default rule, i.e. what
    reading the phantom's Labelme JSON gives.

    Returns:
        ``(H, W, 4)`` uint8 with values 0/1.
    """
    height, width = phantom.image.shape[:2]
    drawings = [_drawing(lesion) for lesion in phantom.lesions]
    return rasterize_labelme(drawings, height, width, len(LESIONS))


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def labelme_shape(lesion: Lesion) -> dict[str, object]:
    """One Labelme 5.x shape: a circle for circle lesions (MAs), a polygon otherwise."""
    if lesion.circle is not None:
        points = [list(lesion.circle[0]), list(lesion.circle[1])]
        shape_type = "circle"
    else:
        # Labelme stores an open ring: drop shapely's closing point.
        points = [[float(x), float(y)] for x, y in lesion.geometry.exterior.coords[:-1]]
        shape_type = "polygon"
    return {
        "label": lesion.kind,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }


def labelme_document(phantom: Phantom, image_name: str) -> dict[str, object]:
    """The Labelme 5.x JSON document of a phantom (``imageData`` null, image beside it)."""
    height, width = phantom.image.shape[:2]
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": [labelme_shape(lesion) for lesion in phantom.lesions],
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete numbered files this module would write that are not in ``keep``.

    Without this, rewriting a folder with fewer images (or without Labelme JSON) would leave
    old images and annotations that the loaders would pick up.
    """
    for path in folder.iterdir():
        if path.is_file() and _OWNED_FILE.match(path.name) and path.name not in keep:
            path.unlink()


def write_tjdr(
    root: str | Path,
    *,
    n_train: int = 32,
    n_test: int = 8,
    size: int = 256,
    seed: int = 0,
    labelme: bool = True,
    grade_probs: Sequence[float] | None = None,
) -> Path:
    """Write a synthetic dataset in the TJDR release layout (plus Labelme JSON and grades).

    Layout::

        root/{train,test}/image/NNN.png        RGB
        root/{train,test}/image/NNN.json       Labelme 5.7.0 (when ``labelme``)
        root/{train,test}/annotation/NNN.png   mode "P", 0 bg 1 EX 2 HE 3 MA 4 SE
        root/{train,test}/grades.csv           image,grade,deciding_lesion

    Numbered ``.png``/``.json`` files already in those folders that this call does not write
    (from an earlier, larger run) are deleted, so the folder holds exactly this dataset.

    Args:
        root: Output folder (created).
        n_train: Number of training images.
        n_test: Number of test images.
        size: Image side in pixels.
        seed: Dataset seed.
        labelme: Also write a Labelme JSON beside each image.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    check_grade_probs(grade_probs)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_test={n_test}")
    for split, count in (("train", n_train), ("test", n_test)):
        image_dir, annotation_dir = root / split / "image", root / split / "annotation"
        image_dir.mkdir(parents=True, exist_ok=True)
        annotation_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        written_images, written_annotations = set(), set()
        for index in range(count):
            rng = image_rng(seed, "tjdr", split, index)
            phantom = render_phantom(size, sample_grade(rng, grade_probs), rng)
            stem = f"{index + 1:03d}"
            Image.fromarray(phantom.image).save(image_dir / f"{stem}.png")
            release_palette_image(release_mask(phantom)).save(annotation_dir / f"{stem}.png")
            written_images.add(f"{stem}.png")
            written_annotations.add(f"{stem}.png")
            if labelme:
                document = labelme_document(phantom, f"{stem}.png")
                (image_dir / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
                written_images.add(f"{stem}.json")
            rows.append((stem, phantom.grade, phantom.deciding_lesion or ""))
        _remove_stale(image_dir, written_images)
        _remove_stale(annotation_dir, written_annotations)
        with (root / split / "grades.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["image", "grade", "deciding_lesion"])
            writer.writerows(rows)
    return root


def retinamnist_filename(size: int) -> str:
    """The file name medmnist uses for RetinaMNIST at ``size`` (the reader's own table)."""
    return npz_path(".", size).name


def write_retinamnist(
    root: str | Path,
    *,
    sizes: Sequence[int] = RETINAMNIST_SIZES,
    n_train: int = 200,
    n_val: int = 50,
    n_test: int = 100,
    seed: int = 0,
    grade_probs: Sequence[float] | None = None,
) -> list[Path]:
    """Write synthetic RetinaMNIST files with medmnist's names, keys, dtypes and shapes.

    Each eye is rendered once at 224 px and area-resized to every requested size, so all
    files show the same eyes. Keys: ``{train,val,test}_images`` ``(N, S, S, 3)`` uint8 and
    ``{train,val,test}_labels`` ``(N, 1)`` uint8, as in the official file.

    Args:
        root: Output folder (created).
        sizes: Any of 28, 64, 128, 224.
        n_train: Training images.
        n_val: Validation images.
        n_test: Test images.
        seed: Dataset seed.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        The written files, in ``sizes`` order.
    """
    root = Path(root)
    names = [retinamnist_filename(size) for size in sizes]
    check_grade_probs(grade_probs)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if min(counts.values()) < 0:
        raise ValueError(f"image counts must be >= 0, got {counts}")
    images: dict[int, dict[str, np.ndarray]] = {size: {} for size in sizes}
    labels: dict[str, np.ndarray] = {}
    for split, count in counts.items():
        stacks = {size: np.zeros((count, size, size, 3), np.uint8) for size in sizes}
        grades = np.zeros((count, 1), np.uint8)
        for index in range(count):
            rng = image_rng(seed, "retinamnist", split, index)
            phantom = render_phantom(RETINAMNIST_RENDER_SIZE, sample_grade(rng, grade_probs), rng)
            grades[index, 0] = phantom.grade
            for size in sizes:
                stacks[size][index] = (
                    phantom.image
                    if size == RETINAMNIST_RENDER_SIZE
                    else cv2.resize(phantom.image, (size, size), interpolation=cv2.INTER_AREA)
                )
        labels[split] = grades
        for size in sizes:
            images[size][split] = stacks[size]
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for size, name in zip(sizes, names, strict=True):
        path = root / name
        # Key order as in the official file; savez_compressed stamps no time, so equal arrays
        # give byte-identical files.
        arrays = {f"{split}_images": images[size][split] for split in counts}
        arrays |= {f"{split}_labels": labels[split] for split in counts}
        np.savez_compressed(path, **arrays)
        paths.append(path)
    return paths


def write_eyepacs(
    root: str | Path,
    *,
    n: int = 60,
    size: int = 128,
    seed: int = 0,
    grade_probs: Sequence[float] | None = None,
) -> Path:
    """Write a synthetic grading folder in Kaggle EyePACS's layout.

    ``trainLabels.csv`` (``image,level``) and ``train/<image>.jpeg``, names
    ``<index>_<left|right>`` as Kaggle's; each eye's grade follows its lesions (the grade
    rule), as in the other synthetic sets. Read with
    :class:`~multitask_dr.datamodules.GradedFolderDataModule` (``layout: eyepacs``).

    Args:
        root: Output folder (created).
        n: Images.
        size: Image side in pixels.
        seed: Dataset seed.
        grade_probs: Grade distribution (default :data:`DEFAULT_GRADE_PROBS`).

    Returns:
        The label file.
    """
    root = Path(root)
    check_grade_probs(grade_probs)
    (root / "train").mkdir(parents=True, exist_ok=True)
    rows = ["image,level"]
    for index in range(n):
        rng = image_rng(seed, "eyepacs", "train", index)
        phantom = render_phantom(size, sample_grade(rng, grade_probs), rng)
        name = f"{index // 2 + 1}_{('left', 'right')[index % 2]}"
        Image.fromarray(phantom.image).save(root / "train" / f"{name}.jpeg", quality=95)
        rows.append(f"{name},{phantom.grade}")
    labels = root / "trainLabels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return labels


def write_synthetic(
    root: str | Path,
    *,
    seed: int = 0,
    n_train: int = 32,
    n_test: int = 8,
    size: int = 256,
    labelme: bool = True,
    retina_sizes: Sequence[int] = RETINAMNIST_SIZES,
    retina_n_train: int = 200,
    retina_n_val: int = 50,
    retina_n_test: int = 100,
    grade_probs: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write both synthetic datasets: ``root/"tjdr"`` and ``root/"retinamnist"``.

    Args:
        root: Output folder.
        seed: Seed of both datasets (they draw from different streams).
        n_train: TJDR training images.
        n_test: TJDR test images.
        size: TJDR image side.
        labelme: Write Labelme JSON beside the TJDR images.
        retina_sizes: RetinaMNIST sizes to write.
        retina_n_train: RetinaMNIST training images.
        retina_n_val: RetinaMNIST validation images.
        retina_n_test: RetinaMNIST test images.
        grade_probs: Grade distribution for both.

    Returns:
        ``{"tjdr": root/"tjdr", "retinamnist": root/"retinamnist"}``.
    """
    root = Path(root)
    tjdr = write_tjdr(
        root / "tjdr",
        n_train=n_train,
        n_test=n_test,
        size=size,
        seed=seed,
        labelme=labelme,
        grade_probs=grade_probs,
    )
    write_retinamnist(
        root / "retinamnist",
        sizes=retina_sizes,
        n_train=retina_n_train,
        n_val=retina_n_val,
        n_test=retina_n_test,
        seed=seed,
        grade_probs=grade_probs,
    )
    return {"tjdr": tjdr, "retinamnist": root / "retinamnist"}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write both synthetic datasets.

    Args:
        argv: Arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        Process exit status (0).
    """
    parser = argparse.ArgumentParser(
        prog="python -m multitask_dr.datasets.synthetic",
        description="Write a synthetic TJDR tree and synthetic RetinaMNIST files.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=32, help="TJDR training images")
    parser.add_argument("--n-test", type=int, default=8, help="TJDR test images")
    parser.add_argument("--size", type=int, default=256, help="TJDR image side in pixels")
    parser.add_argument("--no-labelme", action="store_true", help="skip the Labelme JSON files")
    parser.add_argument(
        "--retina-sizes", type=int, nargs="+", default=list(RETINAMNIST_SIZES), metavar="S"
    )
    parser.add_argument("--retina-n-train", type=int, default=200)
    parser.add_argument("--retina-n-val", type=int, default=50)
    parser.add_argument("--retina-n-test", type=int, default=100)
    parser.add_argument(
        "--grade-probs",
        type=float,
        nargs=NUM_GRADES,
        default=None,
        metavar="P",
        help=f"grade 0-4 weights (default {' '.join(map(str, DEFAULT_GRADE_PROBS))})",
    )
    args = parser.parse_args(argv)
    try:
        check_grade_probs(args.grade_probs)
        retina_names = [retinamnist_filename(size) for size in args.retina_sizes]
    except ValueError as error:
        parser.error(str(error))
    paths = write_synthetic(
        args.out,
        seed=args.seed,
        n_train=args.n_train,
        n_test=args.n_test,
        size=args.size,
        labelme=not args.no_labelme,
        retina_sizes=args.retina_sizes,
        retina_n_train=args.retina_n_train,
        retina_n_val=args.retina_n_val,
        retina_n_test=args.retina_n_test,
        grade_probs=args.grade_probs,
    )
    print(f"TJDR-format tree: {paths['tjdr']} ({args.n_train} train / {args.n_test} test)")
    for name in retina_names:
        print(f"RetinaMNIST file: {paths['retinamnist'] / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
