"""The synthetic fundus photograph: anatomy, vessels, texture and the painted lesions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np
from shapely.geometry import Polygon

from multitask_dr.datasets.synthetic.grade import FieldOfView, Lesion, Phantom, grade_from_lesions
from multitask_dr.datasets.synthetic.masks import lesion_mask
from multitask_dr.datasets.synthetic.sampling import sample_lesions
from multitask_dr.lesions import NUM_GRADES

#: Below this the anatomy (disc, vessels, 1.5 px microaneurysms) no longer fits.
MIN_SIZE: Final[int] = 32


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
    lesions = sample_lesions(rng, size, grade, fov, disc, fovea)
    got, deciding = grade_from_lesions(lesions, fov)
    if got != grade:
        # Not a bare assert: this must hold under ``python -O`` too.
        counts = Counter(lesion.kind for lesion in lesions)
        raise AssertionError(f"sampled lesions {dict(counts)} give grade {got}, not {grade}")
    image = _render_image(rng, size, fov, disc, fovea, lesions)
    return Phantom(image, lesions, grade, deciding, fov, disc, fovea)
