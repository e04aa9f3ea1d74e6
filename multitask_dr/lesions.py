"""Lesion and grade vocabulary shared by every layer.

The project's mask channel order is ``MA, HE, EX, SE`` (the order of the ICDR severity
scale: microaneurysms first). The public TJDR release stores a single index per pixel in a
different order (``1=EX 2=HE 3=MA 4=SE``); :data:`RELEASE_INDEX_TO_CHANNEL` is the one
place that remaps it.
"""

from __future__ import annotations

from typing import Final

#: Lesion names in mask-channel order.
LESIONS: Final[tuple[str, ...]] = ("MA", "HE", "EX", "SE")

#: Long names, for plots and reports.
LESION_NAMES: Final[dict[str, str]] = {
    "MA": "microaneurysms",
    "HE": "haemorrhages",
    "EX": "hard exudates",
    "SE": "soft exudates",
}

NUM_LESIONS: Final[int] = len(LESIONS)

#: The one colour of each lesion in every picture the project draws (RGB 0-255: overlays,
#: W&B panels, attribution plots, docs figures), chosen to stand out on an orange-red fundus.
LESION_COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "MA": (0, 255, 0),
    "HE": (0, 160, 255),
    "EX": (255, 255, 0),
    "SE": (255, 0, 255),
}


def lesion_colour(lesion: str) -> tuple[float, float, float]:
    """:data:`LESION_COLOURS` of ``lesion`` as matplotlib's RGB in ``[0, 1]``."""
    red, green, blue = LESION_COLOURS[lesion]
    return (red / 255, green / 255, blue / 255)


#: ICDR grades 0-4.
GRADE_NAMES: Final[tuple[str, ...]] = (
    "no DR",
    "mild NPDR",
    "moderate NPDR",
    "severe NPDR",
    "proliferative DR",
)
NUM_GRADES: Final[int] = len(GRADE_NAMES)

#: Index of each lesion in a TJDR release palette PNG (0 is background).
RELEASE_INDEX: Final[dict[str, int]] = {"EX": 1, "HE": 2, "MA": 3, "SE": 4}

#: Which lesion a single-index mask (a release palette PNG) keeps where lesions overlap: the
#: first one listed. Smallest lesions first, so an overlap costs the larger lesion a few
#: pixels instead of erasing the smaller one (a microaneurysm on a haemorrhage, an exudate in a
#: cotton-wool spot). The per-lesion masks the project trains on keep every lesion; only the
#: writers of one-index-per-pixel files apply this rule
#: (:func:`multitask_dr.datasets.release_mask.channels_to_release_mask`).
RELEASE_PRIORITY: Final[tuple[str, ...]] = ("MA", "EX", "HE", "SE")

#: Release palette index -> project channel (``-1`` for background).
RELEASE_INDEX_TO_CHANNEL: Final[dict[int, int]] = {0: -1} | {
    index: LESIONS.index(name) for name, index in RELEASE_INDEX.items()
}

#: Value written into a mask where the annotation says "do not score this pixel".
IGNORE_INDEX: Final[int] = 255

#: Grade value for a sample that carries no grade label.
NO_GRADE: Final[int] = -1

#: Default Labelme label -> lesion table. Keys are matched case-insensitively after
#: stripping whitespace; users can extend or replace it from YAML.
DEFAULT_LABEL_MAP: Final[dict[str, str]] = {
    "ma": "MA",
    "microaneurysm": "MA",
    "microaneurysms": "MA",
    "he": "HE",
    "hemorrhage": "HE",
    "hemorrhages": "HE",
    "haemorrhage": "HE",
    "haemorrhages": "HE",
    "ex": "EX",
    "hard exudate": "EX",
    "hard exudates": "EX",
    "hard_exudate": "EX",
    "hard_exudates": "EX",
    "exudate": "EX",
    "se": "SE",
    "soft exudate": "SE",
    "soft exudates": "SE",
    "soft_exudate": "SE",
    "soft_exudates": "SE",
    "cotton wool spot": "SE",
    "cotton_wool_spot": "SE",
    "cws": "SE",
}

#: Labelme's convention for regions that must not be scored.
IGNORE_LABELS: Final[frozenset[str]] = frozenset({"__ignore__"})

#: ``label_map`` target: the shape is an ignore region (neither lesion nor background), e.g.
#: HEI-MED's ``Other Bright Lesion``.
IGNORE_TARGET: Final[str] = "ignore"

#: ``label_map`` target: the shape is not one of our lesions (optic disc, drusen, a scar): it
#: is left out silently and its pixels stay background.
SKIP_TARGET: Final[str] = "none"

#: Palette of the TJDR release masks (labelme / VOC colormap), index -> RGB.
RELEASE_PALETTE: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 0, 0),
    (128, 0, 0),
    (0, 128, 0),
    (128, 128, 0),
    (0, 0, 128),
)
