"""Grade label cells and ``grades.csv`` files (``image,grade``): the one grade-range check."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from multitask_dr.datasets.images import describe_error
from multitask_dr.datasets.problems import ProblemLog
from multitask_dr.lesions import NUM_GRADES


def parse_grade(text: str | None) -> int:
    """An ICDR grade 0-4 from a label file's cell (the one grade-range check of every reader).

    Raises:
        ValueError: Saying why (not an integer, outside 0-4), without the file or line.
    """
    try:
        grade = int(str(text).strip())
    except ValueError:
        raise ValueError(f"grade {text!r} is not an integer") from None
    if not 0 <= grade < NUM_GRADES:
        raise ValueError(f"grade {grade} is outside 0-{NUM_GRADES - 1}")
    return grade


def read_grades(path: Path, problems: ProblemLog) -> dict[str, int]:
    """Read ``grades.csv`` (UTF-8, columns ``image``, ``grade``); bad rows are reported, skipped.

    An unreadable file (not UTF-8, a folder, not CSV) is reported as a whole and gives no
    grades: every image then counts as ungraded.
    """
    grades: dict[str, int] = {}
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        problems.report(
            path, f"not UTF-8 text (byte 0x{byte:02x} at offset {error.start}); save it as UTF-8"
        )
        return grades
    except OSError as error:
        problems.report(path, f"cannot read grades CSV: {describe_error(error)}")
        return grades
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if reader.fieldnames is None or not {"image", "grade"} <= set(reader.fieldnames):
            problems.report(path, "grades CSV needs the columns 'image' and 'grade'")
            return grades
        for row in reader:
            try:
                grade = parse_grade(row["grade"])
            except ValueError as error:
                problems.report(path, f"line {reader.line_num}: {error}", "row")
                continue
            grades[Path(row["image"] or "").stem] = grade
    except csv.Error as error:
        problems.report(path, f"line {reader.line_num}: not valid CSV ({error})")
    return grades


def write_grades(path: Path, rows: Sequence[tuple[str, int, str]]) -> None:
    """Write a ``grades.csv`` :func:`read_grades` reads back (``image,grade,deciding_lesion``).

    Args:
        path: The CSV file (its folder must exist).
        rows: ``(image stem, grade, deciding lesion or "")`` per image.
    """
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "grade", "deciding_lesion"])
        writer.writerows(rows)
