"""The job catalog: specs, parameter validation, the committed job notebooks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import nbformat
import pytest

from pipelines import catalog, runner
from pipelines.catalog import JOBS, JobParams
from pipelines.exceptions import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_declared_jobs() -> None:
    assert set(JOBS) >= {"smoke", "reference_daily", "weather_hourly", "flights_stream"}
    assert JOBS["smoke"].notebook == Path("notebooks/05_smoke.ipynb")
    assert JOBS["reference_daily"].date_param == "date"
    assert JOBS["weather_hourly"].date_param == "date"
    assert JOBS["flights_stream"].date_param is None
    assert JOBS["smoke"].date_param is None


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_spec_is_consistent(name: str) -> None:
    spec = JOBS[name]
    assert spec.name == name
    assert not spec.notebook.is_absolute()
    assert spec.notebook.suffix == ".ipynb"
    assert issubclass(spec.params, JobParams)
    assert spec.params.model_config.get("extra") == "forbid"
    assert "env" in spec.params.model_fields
    assert spec.timeout_s > 0 and spec.retries >= 0 and spec.retry_backoff_s >= 0
    if spec.date_param:
        assert spec.date_param in spec.params.model_fields


def test_strings_from_the_command_line_become_typed_values() -> None:
    assert JOBS["smoke"].validate({"env": "ci", "messages": "25"}).messages == 25
    assert JOBS["smoke"].validate({"env": "ci"}).messages == 1000
    daily = JOBS["reference_daily"].validate({"env": "ci", "date": "2013-01-02"})
    assert daily.date == dt.date(2013, 1, 2)
    assert JOBS["flights_stream"].validate({"env": "ci"}).trigger == "availableNow"


def test_unknown_parameter_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        JOBS["smoke"].validate({"env": "ci", "mesages": "3"})
    assert "unknown parameter 'mesages'" in str(err.value)
    assert "messages (int, default 1000)" in str(err.value)
    assert "env (str, required)" in str(err.value)


@pytest.mark.parametrize(
    ("job", "name", "value"),
    [("smoke", "messages", "many"), ("smoke", "messages", "-1"), ("reference_daily", "date", "x")],
)
def test_wrong_type_is_refused(job: str, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        JOBS[job].validate({"env": "ci", name: value})
    assert f"parameter '{name}'" in str(err.value)
    assert "Allowed parameters" in str(err.value)


def test_runner_sets_env_and_refuses_a_contradiction() -> None:
    assert runner.validate(JOBS["smoke"], "ci", {}).env == "ci"
    with pytest.raises(ConfigError, match="contradicts --env"):
        runner.validate(JOBS["smoke"], "ci", {"env": "local"})
    with pytest.raises(ConfigError, match="set by the runner"):
        runner.validate(JOBS["smoke"], "ci", {runner.METRICS_PARAM: "/tmp/x"})


def test_parse_assignments() -> None:
    assert runner.parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="name=value"):
        runner.parse_assignments(["novalue"])
    with pytest.raises(ConfigError, match="twice"):
        runner.parse_assignments(["a=1", "a=2"])


def test_unknown_job_lists_the_catalog() -> None:
    with pytest.raises(ConfigError, match="no job 'nope'.*smoke"):
        catalog.get("nope")


def test_extra_jobs_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARMAC_JOBS_MODULE", "tests.fixtures.jobs")
    assert catalog.get("tiny").notebook_path.is_file()
    assert "smoke" in catalog.jobs()
    monkeypatch.setenv("TARMAC_JOBS_MODULE", "tests.fixtures.nope")
    with pytest.raises(ConfigError, match="TARMAC_JOBS_MODULE"):
        catalog.get("smoke")


def test_missing_notebook_is_a_clear_error() -> None:
    spec = JOBS["smoke"].__class__("ghost", Path("notebooks/99_ghost.ipynb"), JOBS["smoke"].params)
    with pytest.raises(ConfigError, match="notebooks/99_ghost.ipynb does not exist"):
        runner.run(spec, "ci", {})


def test_smoke_notebook_is_committed_clean_and_parameterized() -> None:
    nb = nbformat.read(REPO / "notebooks" / "05_smoke.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert 'env = "local"' in tagged[0].source and "messages = 1000" in tagged[0].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for call in ("config.load(env)", "smoke.produce(settings, messages)", "smoke.run(settings)"):
        assert call in code
    assert "runner.report(" in nb.cells[-1].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
