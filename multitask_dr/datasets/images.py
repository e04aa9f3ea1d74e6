"""The one image reader: any file PIL decodes, as ``(H, W, 3)`` uint8 RGB, or one clear error.

Every dataset (TJDR, Labelme, image folders, ``predict``) reads photographs through
:func:`read_image` (files) or :func:`decode_image` (bytes embedded in a Labelme file), so they
agree on what a pixel is:

- 8-bit RGB, greyscale, palette and 1-bit images convert as PIL converts them; alpha is
  dropped.
- High bit depths are **scaled**, never clipped: 16-bit greyscale (``I;16``) and 32-bit
  integer images holding 16-bit values keep their top 8 bits, as PIL itself reads 16-bit RGB
  PNGs; floating-point images in [0, 1] are multiplied by 255. (PIL's ``convert("RGB")`` clips
  16-bit values at 255, turning a normal photograph white.)
- What cannot be read (a missing, empty, truncated or non-image file, a folder named like an
  image, an unsupported pixel format) raises :class:`~.problems.DataError` whose reason says
  why without repeating the path, so a problem log can put the file in front once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from multitask_dr.datasets.problems import DataError

#: File endings read as dataset photographs (case-insensitive), by every dataset reader.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

#: PIL modes that ``convert("RGB")`` maps without losing range.
_EIGHT_BIT_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
)


class ImageReadError(ValueError):
    """Pixels that cannot become 8-bit RGB; the message is the reason, without a path."""


def describe_error(error: BaseException) -> str:
    """Why a file could not be decoded, in words, without the path PIL puts in its messages."""
    if isinstance(error, IsADirectoryError):
        return "is a folder, not an image file"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnidentifiedImageError):
        return "not an image file (unknown format or damaged header)"
    if isinstance(error, Image.DecompressionBombError):
        return f"too many pixels to decode safely ({error})"
    if isinstance(error, OSError) and error.errno is not None:  # from the file system
        return error.strerror or str(error)
    # Anything a decoder raises on a file that opened ("image file is truncated", "broken
    # data stream", "decoder error -2", ...) means its bytes are damaged.
    return f"truncated or damaged file ({str(error) or type(error).__name__})"


def _check_file(path: Path) -> None:
    # PIL's own messages for these cases are "cannot identify image file '<path>'" at best.
    if path.is_dir():
        raise DataError("cannot read image: is a folder, not a file", path=path)
    if not path.exists():
        raise DataError("cannot read image: file not found", path=path)
    if path.stat().st_size == 0:
        raise DataError("cannot read image: empty file (0 bytes)", path=path)


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open`` whose failures, also while decoding inside the block, are DataErrors.

    Args:
        path: The image file.

    Raises:
        DataError: Naming the file and the reason (missing, empty, a folder, not an image,
            truncated, unsupported pixels).
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            yield image
    except DataError:
        raise
    except ImageReadError as error:
        raise DataError(f"cannot read image: {error}", path=path) from error
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image: {describe_error(error)}", path=path) from error


def to_rgb(image: Image.Image) -> np.ndarray:
    """Decode an opened image into ``(H, W, 3)`` uint8 RGB, scaling high bit depths.

    Raises:
        ImageReadError: For a pixel format with no faithful 8-bit form (32-bit values beyond
            16 bits, floats outside [0, 1], colour spaces PIL cannot convert).
        OSError: When the pixel data is truncated or damaged (from PIL).
    """
    mode = image.mode
    if mode in _EIGHT_BIT_MODES:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 0xFFFF):
            raise ImageReadError(
                f"{mode} pixel values {values.min()}..{values.max()} exceed 16 bits"
            )
        grey = (values.astype(np.uint32) >> 8).astype(np.uint8)
    elif mode == "F":
        values = np.asarray(image)
        finite = bool(np.isfinite(values).all())
        if values.size and not (finite and 0 <= values.min() <= values.max() <= 1):
            raise ImageReadError("floating-point pixels must lie in [0, 1]")
        grey = np.round(values * 255.0).astype(np.uint8)
    else:
        try:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except ValueError as error:
            raise ImageReadError(f"pixel mode {mode!r} cannot be converted to RGB") from error
    return np.repeat(grey[..., None], 3, axis=2)


def read_image(path: str | Path, *, exif_transpose: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB.

    Args:
        path: The image file.
        exif_transpose: Apply the EXIF orientation, as Labelme does when annotating.

    Raises:
        DataError: Naming the file and why it cannot be read.
    """
    with open_image(path) as image:
        return to_rgb(ImageOps.exif_transpose(image) if exif_transpose else image)


def decode_image(data: bytes, *, exif_transpose: bool = False) -> np.ndarray:
    """Decode image bytes (e.g. Labelme's embedded ``imageData``) as ``(H, W, 3)`` uint8 RGB.

    Raises:
        ImageReadError: With the reason (no path: the caller knows where the bytes came from).
    """
    if not data:
        raise ImageReadError("no image bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return to_rgb(ImageOps.exif_transpose(image) if exif_transpose else image)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageReadError(describe_error(error)) from error


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding pixels.

    Raises:
        DataError: When the file is missing, empty, a folder or not an image.
    """
    with open_image(path) as image:
        return image.size
