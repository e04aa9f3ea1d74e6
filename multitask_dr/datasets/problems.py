"""Strict / lenient handling of bad input files.

Every reader reports a problem through a :class:`ProblemLog`. In strict mode the first
problem raises :class:`DataError`; in lenient mode the bad shape or file is skipped, the
problem is logged with its file and reason, and :meth:`ProblemLog.summary` lists them all at
the end, so one bad annotation never kills a 500-image run unless the user asked for it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from multitask_dr.errors import UserError

log = logging.getLogger(__name__)


class DataError(UserError, ValueError):
    """A data file is unreadable or inconsistent. The message names the file and the fault.

    ``DataError(reason, path=path)`` keeps the two apart (``error.path``, ``error.reason``), so
    a caller that logs the problem under the file does not repeat the path in the reason.
    """


class ReportedError(DataError):
    """A file whose problem is already in the :class:`ProblemLog`: skip it, do not log it again."""


@dataclass(frozen=True)
class Problem:
    """One problem found in one file.

    Attributes:
        path: The offending file.
        reason: What is wrong, in words a user can act on.
        skipped: What was dropped because of it (``"shape"``, ``"file"``, ``"sample"``).
    """

    path: Path
    reason: str
    skipped: str = "file"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason} (skipped {self.skipped})"


@dataclass
class ProblemLog:
    """Collects problems; raises on the first one when ``strict``.

    Args:
        strict: Raise :class:`DataError` on the first problem instead of skipping.
    """

    strict: bool = False
    problems: list[Problem] = field(default_factory=list)

    def report(self, path: str | Path, reason: str, skipped: str = "file") -> None:
        """Record a problem, or raise it in strict mode.

        Args:
            path: The offending file.
            reason: What is wrong.
            skipped: What lenient mode drops because of it.

        Raises:
            DataError: In strict mode.
        """
        problem = Problem(Path(path), reason, skipped)
        if self.strict:
            raise DataError(reason, path=problem.path)
        self.problems.append(problem)
        log.warning("%s", problem)

    def skip(self, path: str | Path, reason: str, skipped: str) -> None:
        """Record a skip the data itself asks for (an image graded "ungradable"), never raising.

        It is counted and listed like a problem, also in strict mode: the file is not faulty.
        """
        problem = Problem(Path(path), reason, skipped)
        self.problems.append(problem)
        log.info("%s", problem)

    def extend(self, other: ProblemLog) -> None:
        """Append the problems of another log (already reported there)."""
        self.problems.extend(other.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def __bool__(self) -> bool:
        # A log is always truthy as an object; emptiness is asked through len().
        return True

    def summary(self) -> str:
        """One paragraph listing every problem, grouped count first."""
        if not self.problems:
            return "no data problems"
        kinds = Counter(p.skipped for p in self.problems)
        head = ", ".join(f"{n} {kind}(s)" for kind, n in sorted(kinds.items()))
        lines = [f"{len(self.problems)} data problem(s), skipped {head}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
