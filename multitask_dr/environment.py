"""Environment variables a third-party import reads, set for that import only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def environment_defaults(**values: str) -> Iterator[None]:
    """Set the variables the user has not set, for the block only; restore them after.

    Some libraries read a variable once, at import (albumentations' update check, medmnist's data
    folder): setting it around the import is enough, and the rest of the process sees the
    environment the user gave it. A value the user set is left as it is.

    Args:
        values: ``NAME="value"`` pairs.
    """
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
