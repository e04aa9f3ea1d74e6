"""The one image reader: every pixel format to 8-bit RGB, scaled not clipped; clear failures."""

from __future__ import annotations

import base64
import json
import re
from io import BytesIO

import cv2
import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.folder import ImageFolderDataset
from multitask_dr.datasets.images import ImageReadError, decode_image, image_size, read_image
from multitask_dr.datasets.labelme import read_labelme
from multitask_dr.datasets.labelme_image import load_labelme_image
from multitask_dr.datasets.problems import DataError, ProblemLog

GREY = (np.arange(48 * 40).reshape(48, 40) % 256).astype(np.uint8)


def rgb_of(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


@pytest.mark.parametrize(
    "name,write",
    [
        ("grey16.png", lambda p: Image.fromarray(GREY.astype(np.uint16) * 257).save(p)),
        ("grey16.tif", lambda p: Image.fromarray(GREY.astype(np.uint16) * 257).save(p)),
        ("int32.tif", lambda p: Image.fromarray(GREY.astype(np.int32) * 257).save(p)),
        ("float.tif", lambda p: Image.fromarray(GREY.astype(np.float32) / 255).save(p)),
        ("rgb48.png", lambda p: cv2.imwrite(str(p), rgb_of(GREY).astype(np.uint16) * 257)),
        ("grey8.png", lambda p: Image.fromarray(GREY).save(p)),
        ("grey_alpha.png", lambda p: Image.fromarray(GREY).convert("LA").save(p)),
        ("palette.png", lambda p: Image.fromarray(GREY).convert("P").save(p)),
        ("rgba.png", lambda p: Image.fromarray(rgb_of(GREY)).convert("RGBA").save(p)),
    ],
)
def test_every_format_reads_as_the_same_8_bit_rgb(name, write, tmp_path):
    path = tmp_path / name
    write(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (48, 40, 3)
    # PIL's palette quantisation may move a grey level by one; everything else is exact.
    tolerance = 1 if name == "palette.png" else 0
    assert np.abs(image.astype(int) - rgb_of(GREY)).max() <= tolerance
    assert image_size(path) == (40, 48)


def test_sixteen_bit_photograph_in_a_folder_is_not_white(tmp_path):
    square = GREY[:40, :40]
    Image.fromarray(square.astype(np.uint16) * 257).save(tmp_path / "photo.png")
    sample = ImageFolderDataset(tmp_path, image_size=20, crop_fov=False)[0]
    assert sample["error"] == ""
    # What predict sees: the photograph's own grey levels, halved in size (not all 255).
    assert sample["image"].float().mean() == pytest.approx(float(square.mean()), abs=1)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
        (lambda p: p.write_text("plain text"), r"not an image file"),
        (lambda p: p.mkdir(), r"is a folder, not a file"),
        (lambda p: None, r"file not found"),
        (
            lambda p: Image.fromarray(GREY.astype(np.int32) * 1000).save(p),
            r"I pixel values 0\.\.255000 exceed 16 bits",
        ),
    ],
    ids=["empty", "text", "folder", "missing", "32-bit"],
)
def test_unreadable_files_name_themselves_once_with_the_reason(make, reason, tmp_path):
    path = tmp_path / "x.tif"
    make(path)
    with pytest.raises(DataError) as info:
        read_image(path)
    assert info.value.path == path
    assert str(path) not in info.value.reason
    assert f"{path}: cannot read image: " in str(info.value)
    assert re.search(reason, info.value.reason), info.value.reason


def test_truncated_file_is_damaged(tmp_path):
    path = tmp_path / "x.png"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:3000])
    image_size(path)  # the header is intact
    with pytest.raises(DataError, match=r"x\.png: cannot read image: truncated or damaged file"):
        read_image(path)
    with pytest.raises(ImageReadError, match="truncated or damaged"):
        decode_image(path.read_bytes())


def test_labelme_embedded_sixteen_bit_image_is_scaled(tmp_path):
    buffer = BytesIO()
    Image.fromarray(GREY.astype(np.uint16) * 257).save(buffer, format="PNG")
    document = {
        "version": "5.7.0",
        "shapes": [],
        "imagePath": "absent.png",
        "imageData": base64.b64encode(buffer.getvalue()).decode(),
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(document))
    problems = ProblemLog(strict=True)
    annotation = read_labelme(path, problems=problems)
    assert annotation is not None
    assert np.array_equal(load_labelme_image(annotation, problems), rgb_of(GREY))
