"""Datasets over a list of named records, restricted to a split's names without re-reading."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

from torch.utils.data import Dataset

from multitask_dr.datasets.problems import DataError, ProblemLog, ReportedError

RecordsT = TypeVar("RecordsT", bound="RecordsDataset")


class RecordsDataset(Dataset):
    """Base of the file datasets: one record (with a ``name``) per sample, in order.

    Subclasses fill :attr:`records` in ``__init__`` (indexing the folder and reporting its
    problems once into :attr:`problems`) and decode a sample in ``load(index)``; :meth:`subset`
    then carves splits out of it.
    """

    records: list[Any]
    problems: ProblemLog

    def load(self, index: int) -> Any:
        """Decode sample ``index`` (through the cache when there is one)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.records)

    def subset(self: RecordsT, names: Sequence[str]) -> RecordsT:
        """The same dataset restricted to ``names`` (no re-indexing, no second problem report)."""
        wanted = set(names)
        part = copy.copy(self)
        part.records = [r for r in self.records if r.name in wanted]
        return part

    def verify(self) -> None:
        """Decode every sample once (filling the cache) and drop the unreadable ones.

        In strict mode the first bad file raises; otherwise each is reported and skipped, so a
        truncated image or a mask with a foreign palette index costs that sample only.
        """
        kept = []
        for index, record in enumerate(self.records):
            try:
                self.load(index)
            except ReportedError:
                continue  # already in the problem log, under its file
            except DataError as error:
                self.problems.report(error.path or record.image, error.reason, "sample")
            else:
                kept.append(record)
        self.records = kept
