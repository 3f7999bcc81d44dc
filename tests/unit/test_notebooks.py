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


def test_the_delay_risk_notebook_is_a_job_in_waiting() -> None:
    """``40_delay_risk.ipynb``: typed papermill parameters, ``env`` first, and the job
    metadata notebook-native jobs read (``tarmac.job``: name, schedule, timeout, retries,
    what it writes in the lake)."""
    path = NOTEBOOKS / "40_delay_risk.ipynb"
    params = papermill.inspect_notebook(str(path))
    assert {n: p["inferred_type_name"] for n, p in params.items()} == {
        "env": "str", "source": "str", "test_from": "Optional[str]", "refit": "bool",
        "save": "bool", "tarmac_metrics_path": "Optional[str]",
    }  # fmt: skip
    assert list(params)[0] == "env" and params["test_from"]["default"] == "None"
    job = nbformat.read(path, as_version=4).metadata["tarmac"]["job"]
    assert job["name"] == "delay_risk" and job["schedule"] == "30 4 * * *"
    assert (job["timeout_s"], job["retries"]) == (1800, 1)
    assert job["writes"] == ["models/delay_risk/<version>", "models/delay_risk_metrics"]
    assert job["description"] and job["nice"] == 10  # a batch job: yields to the hot path
