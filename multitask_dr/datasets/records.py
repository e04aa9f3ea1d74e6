"""Datasets over a list of named records, restricted to a split's names without re-reading."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

from torch.utils.data import Dataset

RecordsT = TypeVar("RecordsT", bound="RecordsDataset")


class RecordsDataset(Dataset):
    """Base of the file datasets: one record (with a ``name``) per sample, in order.

    Subclasses fill :attr:`records` in ``__init__`` (indexing the folder and reporting its
    problems once); :meth:`subset` then carves splits out of it.
    """

    records: list[Any]

    def __len__(self) -> int:
        return len(self.records)

    def subset(self: RecordsT, names: Sequence[str]) -> RecordsT:
        """The same dataset restricted to ``names`` (no re-indexing, no second problem report)."""
        wanted = set(names)
        part = copy.copy(self)
        part.records = [r for r in self.records if r.name in wanted]
        return part
