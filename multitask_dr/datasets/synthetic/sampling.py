"""Randomness of the phantoms: per-image generators, grade draws, lesions that give a grade.

Determinism: each image draws from its own generator seeded by ``(seed, dataset, split,
index)`` (:func:`image_rng`), so the same seed gives byte-identical files and writing more
images never changes the earlier ones.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np
from shapely.geometry import Polygon

from multitask_dr.datasets.synthetic.grade import GRADE2_ORDER, FieldOfView, Lesion, quadrant
from multitask_dr.lesions import NUM_GRADES

#: Default grade distribution, close to RetinaMNIST's (train counts 486/128/206/194/66).
DEFAULT_GRADE_PROBS: Final[tuple[float, ...]] = (0.43, 0.12, 0.19, 0.18, 0.08)

#: Smallest microaneurysm radius in pixels, whatever the image size.
MIN_MA_RADIUS: Final[float] = 1.5


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
        dominant = str(rng.choice(GRADE2_ORDER, p=[0.45, 0.4, 0.15]))
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


def sample_lesions(
    rng: np.random.Generator,
    size: int,
    grade: int,
    fov: FieldOfView,
    disc: tuple[float, float, float],
    fovea: tuple[float, float],
) -> list[Lesion]:
    """Lesions of an eye whose grade under the grade rule is ``grade``, in painting order."""
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
