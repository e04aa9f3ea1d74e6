"""The README and the docs pages agree with the code: module tree, config paths, model keys.

These are the statements that go stale silently when code moves (the strict docs build checks
links and docstrings, not the prose), so they are checked against the tree itself.
"""

import dataclasses
import re
from pathlib import Path

from multitask_dr.models.network import NetworkConfig

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# What a user reads about today's code. docs/benchmarks.md quotes commands as they were run
# (its first lines say how old keys map to today's), so it is left out.
PAGES = [README, REPO / "configs" / "README.md"] + sorted(
    page for page in (REPO / "docs").glob("*.md") if page.name != "benchmarks.md"
)


def layout_tree() -> set[str]:
    """The package paths that docs/layout.md's tree names (``multitask_dr/...``)."""
    text = (REPO / "docs" / "layout.md").read_text()
    block = text.split("```\nmultitask_dr/\n", 1)[1].split("```", 1)[0]
    paths: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        if depth == 0:  # the folders beside the package (configs/, tests/, ...)
            break
        name = line.split()[0]
        if not (name.endswith(".py") or name.endswith("/")):
            continue  # a description's continuation line
        stack = stack[: depth - 1] + [name.rstrip("/")]
        if name.endswith(".py"):
            paths.add("/".join(["multitask_dr", *stack]))
    return paths


def test_layout_names_every_module_of_the_package():
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "multitask_dr").rglob("*.py")}
    named = layout_tree()
    assert package - named == set(), "modules missing from docs/layout.md"
    assert named - package == set(), "docs/layout.md names modules that do not exist"


def test_readme_is_a_front_page_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "./scripts/demo.sh" in text
    assert "./scripts/test.sh" in text


def test_config_files_named_in_the_docs_exist():
    for page in PAGES:
        for name in re.findall(r"configs/[\w/.-]+?\.yaml", page.read_text()):
            assert (REPO / name).is_file(), f"{page.relative_to(REPO)} names {name}"


def test_network_keys_are_written_under_model_network():
    fields = "|".join(f.name for f in dataclasses.fields(NetworkConfig))
    flat = re.compile(rf"model\.({fields})\b")
    for page in PAGES:
        found = flat.findall(page.read_text())
        assert not found, f"{page.relative_to(REPO)}: model.{found[0]} (now model.network.*)"


def test_no_code_points_at_the_readme_for_text_it_no_longer_holds():
    # The README is a front page; the text lives in docs/ and configs/README.md.
    for path in [*(REPO / "multitask_dr").rglob("*.py"), *(REPO / "configs").rglob("*.yaml")]:
        text = path.read_text()
        assert not re.search(r"\bREADME\b(?!\.md)", text), path.relative_to(REPO)
