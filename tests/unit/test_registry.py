"""The job registry: specs, parameter validation, the committed job notebooks."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import nbformat
import pytest

from pipelines.core.exceptions import ConfigError
from pipelines.jobs import params, registry
from pipelines.jobs.params import JobParams
from pipelines.jobs.registry import JOBS
from pipelines.orchestration import runner

REPO = Path(__file__).resolve().parents[2]


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


def test_a_stream_trigger_is_drain_or_an_interval() -> None:
    assert params.trigger_options("availableNow") == {"availableNow": True}
    assert params.trigger_options("500ms") == {"processingTime": "500 milliseconds"}
    assert params.trigger_options("10s") == {"processingTime": "10 seconds"}
    assert params.trigger_options("2 min") == {"processingTime": "2 minutes"}
    with pytest.raises(ConfigError, match="an interval like '2s' or '500ms'"):
        params.trigger_options("1.5s")


def test_unknown_parameter_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        JOBS["smoke"].validate({"env": "ci", "mesages": "3"})
    assert "unknown parameter 'mesages'" in str(err.value)
    assert "messages (int, default 1000)" in str(err.value)
    assert "env (str, required)" in str(err.value)


@pytest.mark.parametrize(
    ("job", "name", "value"),
    [("smoke", "messages", "many"), ("smoke", "messages", "-1"), ("reference_daily", "date", "x"),
     ("flights_stream", "board_trigger", "0.5s"), ("flights_stream", "trigger", "soon")],
)  # fmt: skip
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
        runner.validate(JOBS["smoke"], "ci", {registry.METRICS_PARAM: "/tmp/x"})


def test_parse_assignments() -> None:
    assert registry.parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="name=value"):
        registry.parse_assignments(["novalue"])
    with pytest.raises(ConfigError, match="twice"):
        registry.parse_assignments(["a=1", "a=2"])


def test_unknown_job_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match="no job 'nope'.*smoke"):
        registry.get("nope")


def test_extra_jobs_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARMAC_JOBS_MODULE", "tests.fixtures.jobs")
    assert registry.get("tiny").notebook_path.is_file()
    assert "smoke" in registry.jobs()
    monkeypatch.setenv("TARMAC_JOBS_MODULE", "tests.fixtures.nope")
    with pytest.raises(ConfigError, match="TARMAC_JOBS_MODULE"):
        registry.get("smoke")


def test_missing_notebook_is_a_clear_error() -> None:
    spec = JOBS["smoke"].__class__("ghost", Path("notebooks/99_ghost.ipynb"), JOBS["smoke"].params)
    with pytest.raises(ConfigError, match="notebooks/99_ghost.ipynb does not exist"):
        runner.run(spec, "ci", {})


@pytest.mark.parametrize("name", sorted(JOBS))
def test_papermill_reads_every_parameter_without_a_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What papermill does before a run: parse the parameters cell and compare the runner's
    parameters with it ("Unable to parse line", "Passed unknown parameter" are warnings)."""
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node

    spec = JOBS[name]
    passed = {**spec.validate({"env": "ci"}).model_dump(mode="json"), registry.METRICS_PARAM: "x"}
    with caplog.at_level(logging.WARNING, logger="papermill"):
        declared = {p.name for p in _infer_parameters(load_notebook_node(str(spec.notebook_path)))}
    assert set(passed) <= declared
    assert [r.getMessage() for r in caplog.records] == []


@pytest.mark.parametrize("name", sorted(JOBS))
def test_job_notebook_is_a_thin_typed_door(name: str) -> None:
    """Each job notebook: committed without outputs, a parameters cell generated from the job's
    model (papermill reads every parameter with its type), one call into the registry."""
    import papermill

    spec = JOBS[name]
    nb = nbformat.read(spec.notebook_path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3" and nb.cells[0].cell_type == "markdown"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0].source == registry.parameters_cell(spec)
    inferred = {
        n: p["inferred_type_name"]
        for n, p in papermill.inspect_notebook(str(spec.notebook_path)).items()
    }
    assert list(inferred) == [*spec.params.model_fields, registry.METRICS_PARAM]
    assert "None" not in inferred.values()  # every parameter typed
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'registry.run_job("{name}", settings' in code
    call = code[code.index(f'registry.run_job("{name}"') :]
    call = call[: call.index(")")]
    # every parameter reaches the job (one left out is silently its default)
    missing = [f for f in spec.params.model_fields if f != "env" and f"{f}={f}" not in call]
    assert missing == []
    assert "report.report_job(result, tarmac_metrics_path)" in nb.cells[-1].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_batch_jobs_yield_the_cores_to_the_stream() -> None:
    """The file jobs and housekeeping run niced (their kernel, JVM and Python workers inherit
    it); the stream runs at the normal priority (its lake path niced in its own process)."""
    from pipelines.jobs.path_process import NICE

    assert {n: s.nice for n, s in JOBS.items()} == {
        "smoke": 0, "reference_daily": registry.BATCH_NICE, "weather_hourly": registry.BATCH_NICE,
        "flights_stream": 0, "housekeeping": registry.BATCH_NICE, "alerts": 0,
        "rebuild": registry.BATCH_NICE,
    }  # fmt: skip
    assert registry.BATCH_NICE >= NICE > 0
