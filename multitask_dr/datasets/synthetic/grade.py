"""The phantoms' lesion data model and grade rule (no rendering, no writing).

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
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from shapely.geometry import Polygon

from multitask_dr.datasets.rasterize import disc
from multitask_dr.lesions import LESIONS

#: Tie-break order of the grade-2 deciding lesion.
GRADE2_ORDER: Final[tuple[str, ...]] = ("HE", "EX", "SE")

FieldOfView = tuple[float, float, float]


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
    present = [kind for kind in GRADE2_ORDER if counts[kind] > 0]
    if present:
        # max() keeps the first of equal counts, and GRADE2_ORDER is the tie-break order.
        return 2, max(present, key=lambda kind: counts[kind])
    if counts["MA"] > 0:
        return 1, "MA"
    return 0, None
