"""Keep committed notebooks free of outputs: only their source goes into git.

Usage::

    python scripts/strip_notebooks.py            # strip notebooks/*.ipynb in place
    python scripts/strip_notebooks.py --check    # list notebooks with outputs, exit 1 if any
    python scripts/strip_notebooks.py a.ipynb    # specific files

Outputs (figures, tables, tracebacks, local paths) and execution counts change on every run and
would bloat the history; ``tests/test_notebooks.py`` checks the committed notebooks with
:func:`problems` and executes them in a temporary folder instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: Cell metadata that runs leave behind (nbclient timings, UI state).
RUN_CELL_METADATA = ("execution", "collapsed", "scrolled")


def problems(notebook: Any) -> list[str]:
    """What a run left in ``notebook`` (empty when it is stripped)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution_count {cell.execution_count}")
        left = [key for key in RUN_CELL_METADATA if key in cell.metadata]
        if left:
            found.append(f"cell {index}: run metadata {left}")
    if "widgets" in notebook.metadata:
        found.append("notebook: widget state")
    return found


def strip(notebook: Any) -> bool:
    """Remove outputs, execution counts and run metadata in place; True when anything changed."""
    changed = bool(problems(notebook))
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        for key in RUN_CELL_METADATA:
            cell.metadata.pop(key, None)
    notebook.metadata.pop("widgets", None)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Strip (or check) notebooks; returns the exit status."""
    parser = argparse.ArgumentParser(description="Strip outputs from Jupyter notebooks.")
    parser.add_argument("paths", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="only report, exit 1 if unstripped")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        found = problems(notebook)
        if not found:
            continue
        dirty.append(path)
        if args.check:
            print(f"{path}: " + "; ".join(found[:5]) + (" ..." if len(found) > 5 else ""))
        else:
            strip(notebook)
            nbformat.write(notebook, path)
            print(f"stripped {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
