"""Content digests of dataset files: cache keys and duplicate detection."""

from __future__ import annotations

import hashlib
from pathlib import Path

from multitask_dr.datasets.images import describe_error
from multitask_dr.datasets.problems import DataError


def file_digest(*paths: Path) -> str:
    """Short content hash of files (cache keys, duplicate detection).

    Raises:
        DataError: When a file cannot be read.
    """
    digest = hashlib.sha1()
    for path in dict.fromkeys(paths):  # a Labelme file with its own image is hashed once
        try:
            digest.update(path.read_bytes())
        except OSError as error:
            raise DataError(f"cannot read file: {describe_error(error)}", path=path) from error
    return digest.hexdigest()[:16]


# (path, size, mtime_ns) of each file -> file_digest: shared by every dataset of the process
# (and inherited by DataLoader workers), so each file is read and hashed once, not per sample.
_DIGESTS: dict[tuple[tuple[str, int, int], ...], str] = {}


def cached_file_digest(*paths: Path) -> str:
    """:func:`file_digest`, recomputed only when a file's size or modification time changes.

    Cache keys are taken on every sample load: hashing a 2048² photograph and its annotation
    each time costs more than reading the cached sample.
    """
    stamp = tuple((str(p), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths)
    digest = _DIGESTS.get(stamp)
    if digest is None:
        digest = _DIGESTS[stamp] = file_digest(*paths)
    return digest
