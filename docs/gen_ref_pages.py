"""Generate one API reference page per module of the ``multitask_dr`` package.

Run by ``mkdocs-gen-files`` during ``mkdocs build``: it walks the package tree as it is on
disk, so a module that moves, appears or disappears changes the reference without anyone
editing a list. The navigation is written as ``reference/SUMMARY.md`` for
``mkdocs-literate-nav``.
"""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "multitask_dr"

nav = mkdocs_gen_files.Nav()
for path in sorted(PACKAGE.rglob("*.py")):
    module_path = path.relative_to(ROOT).with_suffix("")
    parts = tuple(module_path.parts)
    if parts[-1] == "__main__":
        continue
    doc_path = Path(*parts).with_suffix(".md")
    if parts[-1] == "__init__":
        parts = parts[:-1]
        doc_path = Path(*parts, "index.md")
    full_doc_path = Path("reference", doc_path)
    nav[parts] = doc_path.as_posix()
    with mkdocs_gen_files.open(full_doc_path, "w") as page:
        page.write(f"# `{'.'.join(parts)}`\n\n::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(full_doc_path, path.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
