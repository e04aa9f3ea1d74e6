import os

import numpy as np

from multitask_dr.datasets.tjdr import TJDRDataset
from multitask_dr.lesions import (
    LESIONS,
    RELEASE_INDEX,
)
from tests.datasets.tjdr_files import make_release, palette_png


def test_files_are_hashed_once_until_they_change(tmp_path, monkeypatch):
    import multitask_dr.datasets.file_digest as digest

    make_release(tmp_path, n=2)
    hashed = []
    real = digest.file_digest
    monkeypatch.setattr(digest, "file_digest", lambda *paths: hashed.append(paths) or real(*paths))
    cache = tmp_path / "cache"
    dataset = TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)
    for _ in range(3):
        for i in range(len(dataset)):
            dataset[i]
    # A second dataset over the same files (the datamodule builds several) hashes nothing.
    TJDRDataset(tmp_path, "train", image_size=20, cache_dir=cache)[0]
    assert len(hashed) == 2
    # Same size, new content and modification time: hashed again, a new cache entry.
    annotation = tmp_path / "train" / "annotation" / "001.png"
    index = np.zeros((40, 40), np.uint8)
    index[5:10, 5:10] = RELEASE_INDEX["SE"]
    palette_png(annotation, index)
    stat = annotation.stat()
    os.utime(annotation, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = dataset[0]["mask"]
    assert len(hashed) == 3
    assert changed[..., LESIONS.index("SE")].any()
    assert len(list(cache.glob("*.npz"))) == 3
