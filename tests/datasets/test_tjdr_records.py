import numpy as np
import pytest
from PIL import Image

from multitask_dr.datasets.problems import DataError
from multitask_dr.datasets.tjdr import TJDRDataset
from tests.datasets.tjdr_files import make_release, palette_png, rgb_png


def test_missing_partner_and_size_mismatch_are_reported_and_skipped(tmp_path):
    make_release(tmp_path)
    (tmp_path / "train" / "annotation" / "002.png").unlink()
    rgb_png(tmp_path / "train" / "image" / "003.png", size=(50, 40))
    palette_png(tmp_path / "train" / "annotation" / "009.png", np.zeros((4, 4)))
    dataset = TJDRDataset(tmp_path, "train")
    assert [r.name for r in dataset.records] == ["001"]
    text = dataset.problems.summary()
    assert "002.png: no annotation found" in text
    assert "003.png" in text and "differs from its image" in text
    assert "009.png: annotation has no image" in text
    with pytest.raises(DataError, match="002.png: no annotation found"):
        TJDRDataset(tmp_path, "train", strict=True)


def test_tjdr_and_predict_folders_accept_the_same_image_files(tmp_path):

    from multitask_dr.datasets.folder import ImageFolderDataset
    from multitask_dr.datasets.images import IMAGE_SUFFIXES
    from multitask_dr.datasets.problems import ProblemLog
    from multitask_dr.datasets.tjdr_records import find_records

    split = tmp_path / "train"
    (split / "image").mkdir(parents=True)
    (split / "annotation").mkdir()
    pixels = np.full((16, 16, 3), 120, dtype=np.uint8)
    for index, suffix in enumerate(IMAGE_SUFFIXES):
        Image.fromarray(pixels).save(split / "image" / f"{index:03d}{suffix}")
        Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").convert("P").save(
            split / "annotation" / f"{index:03d}.png"
        )
    problems = ProblemLog()
    records = find_records(split, "png", problems)
    assert [r.image.suffix for r in records] == list(IMAGE_SUFFIXES) and len(problems) == 0
    assert len(ImageFolderDataset(str(split / "image"), 16)) == len(IMAGE_SUFFIXES)
