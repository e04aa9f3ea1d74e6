"""The image a Labelme file belongs to: embedded ``imageData``, ``imagePath`` or a sibling file.

Also how big that image is, which :func:`~multitask_dr.datasets.labelme.read_labelme` needs to
clip shapes before any pixel is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from PIL import Image, ImageOps

from multitask_dr.datasets.images import decode_image, to_rgb
from multitask_dr.datasets.labelme_shapes import DATA_URI, ShapeError
from multitask_dr.datasets.problems import ProblemLog

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from multitask_dr.datasets.labelme import LabelmeAnnotation

#: Extensions tried, in order, when looking for the image next to a Labelme file.
IMAGE_EXTENSIONS: Final[tuple[str, ...]] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".webp",
)

_EXIF_ORIENTATION: Final[int] = 0x0112
_TRANSPOSED_ORIENTATIONS: Final[frozenset[int]] = frozenset({5, 6, 7, 8})


def load_labelme_image(annotation: LabelmeAnnotation, problems: ProblemLog) -> np.ndarray | None:
    """Load the image an annotation belongs to, as RGB.

    The embedded ``imageData`` wins; otherwise ``imagePath`` (relative to the JSON, Windows
    separators accepted), then a sibling of the JSON with the same stem and an image extension
    (covers ``imagePath`` pointing at the JSON itself, as in Labelme's tutorial file, or at a
    file that moved). EXIF orientation is applied, as Labelme does when annotating.

    Args:
        annotation: From :func:`read_labelme`.
        problems: Where a missing, unreadable or wrongly sized image is reported.

    Returns:
        ``(H, W, 3)`` uint8 RGB array, or ``None`` (lenient mode) when no usable image exists.

    Raises:
        DataError: In strict mode, when no usable image exists; the message names the JSON and
            every path tried.
    """
    path = annotation.path
    if annotation.image_data is not None:
        try:
            return _check_image_size(annotation, _decode_rgb(annotation.image_data), "imageData")
        except ShapeError as error:
            problems.report(path, error.reason, skipped=error.skipped)
            return None
        except (OSError, SyntaxError, ValueError) as error:
            problems.report(
                path,
                f"embedded imageData cannot be decoded ({error}); trying the image file instead",
                skipped="imageData",
            )
    tried = _image_candidates(path, annotation.image_path)
    for candidate in tried:
        if not candidate.is_file():
            continue
        try:
            with Image.open(candidate) as image:
                rgb = _to_rgb(image)
            return _check_image_size(annotation, rgb, str(candidate))
        except ShapeError as error:
            problems.report(path, error.reason, skipped=error.skipped)
            return None
        except (OSError, SyntaxError, ValueError) as error:
            problems.report(path, f"image {candidate} cannot be read: {error}")
            return None
    siblings = set(_image_candidates(path, None))
    declared = [str(p) for p in tried if p not in siblings]
    pattern = f"{path.with_suffix('')}.{{{','.join(e[1:] for e in IMAGE_EXTENSIONS)}}}"
    listed = ", ".join([*declared, f"{pattern} (lower and upper case)"])
    problems.report(path, f"image not found for this Labelme file; tried {listed}")
    return None


# --------------------------------------------------------------------------------------------
# Image helpers


def _to_rgb(image: Image.Image) -> np.ndarray:
    # The project's one pixel conversion (16-bit scaled, not clipped), after EXIF orientation.
    return to_rgb(ImageOps.exif_transpose(image))


def _decode_rgb(data: bytes) -> np.ndarray:
    return decode_image(data, exif_transpose=True)


def _header_size(image: Image.Image) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, read from the header only."""
    width, height = image.size
    if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width


def _check_image_size(annotation: LabelmeAnnotation, rgb: np.ndarray, source: str) -> np.ndarray:
    expected = (annotation.height, annotation.width)
    if None not in expected and rgb.shape[:2] != expected:
        raise ShapeError(
            f"image {source} is {rgb.shape[1]}x{rgb.shape[0]} but the annotation is for "
            f"{annotation.width}x{annotation.height}",
            skipped="file",
        )
    return rgb


def read_image_data(
    path: Path, value: Any, problems: ProblemLog
) -> tuple[bytes | None, tuple[int, int] | None]:
    """Decode ``imageData`` (base64) and read its size from the image header."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        problems.report(path, "imageData is not a base64 string", skipped="imageData")
        return None, None
    try:
        data = base64.b64decode(DATA_URI.sub("", value, count=1), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            size = _header_size(image)
    except (binascii.Error, ValueError, OSError, SyntaxError) as error:
        problems.report(path, f"imageData cannot be decoded: {error}", skipped="imageData")
        return None, None
    return data, size


def _image_candidates(json_path: Path, image_path: Path | None) -> list[Path]:
    """Paths to try for the image, in order, without the JSON itself and duplicates."""
    candidates: list[Path] = []
    if image_path is not None:
        candidates += [image_path, json_path.parent / image_path.name]
    candidates += [json_path.with_suffix(ext) for ext in IMAGE_EXTENSIONS]
    candidates += [json_path.with_suffix(ext.upper()) for ext in IMAGE_EXTENSIONS]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate != json_path and candidate not in unique:
            unique.append(candidate)
    return unique


def find_image(json_path: Path, value: Any) -> Path | None:
    """The image file a Labelme file's ``imagePath`` names, or its sibling of the same stem.

    Returns:
        The first candidate that exists, else where ``imagePath`` points (it may not exist),
        else ``None``.
    """
    declared: Path | None = None
    if isinstance(value, str) and value.strip():
        # Labelme on Windows writes backslashes; PureWindowsPath reads both separators.
        relative = PureWindowsPath(value.strip())
        declared = (
            Path(relative.name)
            if relative.is_absolute() or relative.drive
            else Path(*relative.parts)
        )
        declared = json_path.parent / declared
        if declared == json_path:
            declared = None
    for candidate in _image_candidates(json_path, declared):
        if candidate.is_file():
            return candidate
    return declared


def annotation_size(
    path: Path,
    data: dict[str, Any],
    embedded: tuple[int, int] | None,
    image_path: Path | None,
    problems: ProblemLog,
) -> tuple[int | None, int | None]:
    """``(height, width)`` of a Labelme file's image: declared, embedded or from its header.

    A declared size that contradicts the embedded image is reported (the image wins);
    ``(None, None)`` when
    nothing tells it.
    """
    declared: tuple[int, int] | None = None
    raw_h, raw_w = data.get("imageHeight"), data.get("imageWidth")
    if raw_h is not None or raw_w is not None:
        if _is_size(raw_h) and _is_size(raw_w):
            declared = (int(raw_h), int(raw_w))
        else:
            problems.report(
                path,
                f"invalid imageHeight/imageWidth {raw_h!r}/{raw_w!r}; size taken from the image",
                skipped="declared size",
            )
    if embedded is not None:
        if declared is not None and declared != embedded:
            problems.report(
                path,
                f"imageHeight/imageWidth say {declared[1]}x{declared[0]} but the embedded image "
                f"is {embedded[1]}x{embedded[0]}; using the image's size",
                skipped="declared size",
            )
        return embedded
    if declared is not None:
        return declared
    if image_path is not None and image_path.is_file():
        try:
            with Image.open(image_path) as image:
                return _header_size(image)
        except (OSError, SyntaxError, ValueError):
            # Reported by load_labelme_image if anyone loads it; the size just stays unknown.
            log.debug("%s: cannot read the header of %s", path, image_path)
    return None, None


def _is_size(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == int(value)
        and value > 0
    )
