"""The notebooks of ``notebooks/`` as committed: valid, the project's kernel, no outputs (a run's
outputs belong to its run record, ``outputs/runs/``, never to git), and the exploration
notebooks parameterized like the jobs' (a cell tagged ``parameters``, ``env`` first)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


def test_the_lake_notebook_takes_an_env_and_dates() -> None:
    """``01_explore_lake.ipynb``: papermill reads each parameter with its type."""
    params = papermill.inspect_notebook(str(NOTEBOOKS / "01_explore_lake.ipynb"))
    assert {n: p["inferred_type_name"] for n, p in params.items()} == {
        "env": "str", "day": "Optional[str]", "first_day": "Optional[str]",
        "last_day": "Optional[str]",
    }  # fmt: skip
    assert params["env"]["default"] == '"local"'
