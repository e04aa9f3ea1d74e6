"""The notebooks: committed without outputs, and run top to bottom on the synthetic default.

Each notebook runs in a fresh kernel (the venv's own ``python3`` kernel, found through
``sys.prefix``; nothing is registered globally) with its work folder in a temporary directory,
where it writes data, logs, checkpoints and figures. Notebook 02 reuses notebook 01's checkpoint
from the shared folder (it trains one itself when run alone).
"""

from __future__ import annotations

import time

import nbformat
import pytest

from tests.conftest import REPO_ROOT
from tests.scripts import load_script

NOTEBOOKS = REPO_ROOT / "notebooks"

#: Notebook -> (figures it must save, text its printed output must contain).
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "01_quickstart": (
        ["01_phantoms.png", "01_training.png"],  # + the W&B panel figure, shown inline
        [
            "grade counts (train)",
            "fit took",
            "test metrics:",
            "test/grade/qwk",
            "2 offline runs in logs/wandb",
        ],
    ),
    "02_lesion_grade_attribution": (
        [
            "02_overlays.png",
            "02_contributions.png",
            "02_ablation_curves.png",
            "02_integrated_gradients.png",
            "02_instances.png",
            "02_inpainting.png",
            "02_rule_head_instances.png",
        ],
        [
            "identity residual max |sum(contributions) + bias - logits| = 0.00e+00",
            "expected grade after erasing each lesion type's map",
            "integrated gradients per lesion type",
            "effect of INPAINTING lesions",
            "largest |effect| of erasing lesion MAPS over all test eyes:",
            "(round-off only)",
            "erasing each haemorrhage",
            "top-ranked lesion == deciding lesion",
        ],
    ),
    "03_dataset_inspection": (
        ["03_class_balance.png", "03_retinamnist_grades.png"],
        [
            "Dataset report for",
            "png pixels also in labelme",
            "crossing splits [['test/099', 'train/001']]",
            "RetinaMNIST grades per split",
        ],
    ),
}


def strip_script():
    return load_script("scripts/strip_notebooks.py")


def test_committed_notebooks_are_valid_and_have_no_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.stem for p in paths] == sorted(EXPECTED)
    script = strip_script()
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert script.problems(notebook) == [], f"{path.name}: run scripts/strip_notebooks.py"
        assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_strip_removes_what_a_run_leaves(tmp_path):
    script = strip_script()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    cell = notebook.cells[0]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell.execution_count = 3
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    assert script.main(["--check", str(path)]) == 1
    assert script.main([str(path)]) == 0
    stripped = nbformat.read(path, as_version=4)
    assert script.problems(stripped) == [] and stripped.cells[0].source == "print(1)"
    assert script.main(["--check", str(path)]) == 0


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One work folder for all notebooks, so 02 finds 01's checkpoint."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_notebook_runs_top_to_bottom(name, work, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    for key, value in {
        "MULTITASK_DR_NOTEBOOK_DIR": str(work),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MULTITASK_DR_CKPT", raising=False)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},  # the kernel's working directory
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"\n{name}: {time.perf_counter() - start:.0f} s")

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    figures, markers = EXPECTED[name]
    for marker in markers:
        assert marker in printed, marker
    for figure in figures:
        path = work / "figures" / figure
        assert path.exists() and path.stat().st_size > 5_000, figure
    shown = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(shown) >= len(figures)  # and displayed inline (ipykernel's inline backend)
