"""Notebook-native jobs (pipelines/jobs/notebook_jobs.py): a notebook's metadata ``tarmac.job``
and its ``parameters`` cell make a job of the one registry; its script for spark-submit; the
hand run's lock (pipelines/orchestration/locks.py ``hold``). No Spark, no service: the test
notebooks of tests/notebooks/ (``$TARMAC_JOBS_NOTEBOOKS``), and scratch ones."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from pipelines.core.exceptions import ConfigError, JobLockedError
from pipelines.jobs import notebook_jobs, registry
from pipelines.jobs.params import JobParams
from pipelines.orchestration import runner
from pipelines.orchestration.locks import RUN_LOCK_ENV, JobLock, hold, lock_path, read_holder

REPO = Path(__file__).resolve().parents[2]
TEST_NOTEBOOKS = REPO / "tests" / "notebooks"


@pytest.fixture
def test_jobs(monkeypatch: pytest.MonkeyPatch) -> dict[str, registry.JobSpec]:
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, "tests/notebooks")
    return registry.jobs()


def _notebook(folder: Path, name: str, job: dict[str, Any] | None, params: str) -> Path:
    """A scratch notebook ``folder/name.ipynb`` declaring ``job`` with ``params`` as its
    parameters cell."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(env)")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    if job is not None:
        nb.metadata["tarmac"] = {"job": job}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_notebook_job_joins_the_registry_without_a_module(test_jobs) -> None:
    spec = test_jobs["nb_job_sum"]
    assert spec.native and spec.module is None and spec.code == "notebook"
    assert spec.notebook == Path("tests/notebooks/nb_job_sum.ipynb")
    assert spec.notebook_path == TEST_NOTEBOOKS / "nb_job_sum.ipynb"
    assert (spec.schedule, spec.timeout_s, spec.retries, spec.retry_backoff_s) == (
        "17 4 * * *", 300, 0, 5,
    )  # fmt: skip
    assert spec.writes == ("<out>/sums (Delta)", "<out>/result.json")
    assert {"smoke", "weather_hourly", "nb_job_sum", "nb_job_hold"} <= set(test_jobs)
    assert registry.get("nb_job_hold").date_param == "day"
    # defaults as JobSpec's where the metadata says nothing
    hold_spec = test_jobs["nb_job_hold"]
    assert (hold_spec.nice, hold_spec.writes, hold_spec.schedule) == (0, (), None)


def test_without_the_variable_only_notebooks_of_notebooks_count(monkeypatch) -> None:
    monkeypatch.delenv(notebook_jobs.NOTEBOOKS_ENV, raising=False)
    assert "nb_job_sum" not in registry.jobs()
    assert notebook_jobs.folders() == [REPO / "notebooks"]
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, "tests/nope")
    with pytest.raises(ConfigError, match="TARMAC_JOBS_NOTEBOOKS names 'tests/nope'"):
        registry.jobs()


def test_parameters_come_from_the_parameters_cell_strict_and_typed(test_jobs) -> None:
    spec = test_jobs["nb_job_sum"]
    assert issubclass(spec.params, JobParams)
    assert list(spec.params.model_fields) == ["env", "n", "buckets", "out"]
    assert spec.describe_params() == (
        "env (str, required), n (int, default 1000), buckets (int, default 7), out (str, "
        "default '')"
    )
    assert (
        spec.params.model_fields["n"].description == "rows of the DataFrame: the integers 0 .. n-1"
    )
    assert spec.validate({"env": "ci", "n": "25"}).n == 25
    with pytest.raises(ConfigError, match="unknown parameter 'rows'.*n \\(int, default 1000\\)"):
        spec.validate({"env": "ci", "rows": "3"})
    with pytest.raises(ConfigError, match="parameter 'n'.*'many'"):
        spec.validate({"env": "ci", "n": "many"})
    with pytest.raises(ConfigError, match="missing parameter 'env'"):
        spec.validate({})
    with pytest.raises(ConfigError, match="set by the runner"):
        runner.validate(spec, "ci", {registry.METRICS_PARAM: "x"})
    # the date parameter is a date; optional ones keep their None
    dated = test_jobs["nb_job_hold"].validate({"env": "ci", "day": "2013-01-02"})
    assert dated.day == dt.date(2013, 1, 2) and dated.model_dump(mode="json")["day"] == "2013-01-02"
    assert test_jobs["nb_job_hold"].validate({"env": "ci"}).day is None


@pytest.mark.parametrize(
    ("params", "job", "message"),
    [
        ("env = 'ci'\nx = 1", {"name": "Bad Name"}, "name: String should match pattern"),
        ("env = 'ci'", {"name": "j", "schedule": "every day"}, "is not 5 cron fields"),
        ("env = 'ci'", {"name": "j", "schedule": "61 * * * *"}, "is not 5 cron fields"),
        ("env = 'ci'", {"name": "j", "retries": -1}, "retries: Input should be greater"),
        ("env = 'ci'", {"name": "j", "owner": "me"}, "owner: Extra inputs are not permitted"),
        ("env = 'ci'", {"name": "j", "date_param": "date"}, "date_param 'date' is not in"),
        ("env = 'ci'\ndate = 3", {"name": "j", "date_param": "date"}, "must be a str parameter"),
        ("date = '13/01/02'", {"name": "j", "date_param": "date"}, "is not YYYY-MM-DD"),
        ("import os", {"name": "j"}, "line 1: only `name = value`"),
        ("x = os.getcwd()", {"name": "j"}, "the value of 'x' is not a literal"),
        ("x = [1, 2]", {"name": "j"}, "a parameter is a str, int, float, bool or None"),
        ("x: int = 'a'", {"name": "j"}, "the default of 'x' \\('a'\\) is not a int"),
        ("x: list = []", {"name": "j"}, "type 'list' is not one of str, int"),
        ("x = None  # type: Optional[int] help", {"name": "j", "nice": 30}, "nice: Input should"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: str, job: dict, message: str
) -> None:
    _notebook(tmp_path, "scratch", job, params)
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=message) as err:
        registry.jobs()
    assert "scratch.ipynb" in str(err.value)


def test_types_from_annotations_type_comments_and_defaults(tmp_path: Path, monkeypatch) -> None:
    params = (
        'env: str = "local"  # parameters/<env>.yaml\n'
        "rate: float = 1  # an int default of a float\n"
        "flag = False\n"
        "limit = None  # type: Optional[int] at most this many\n"
        "name = None\n"
        "day = '2013-01-02'\n"
    )
    _notebook(tmp_path, "typed", {"name": "typed", "date_param": "day"}, params)
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path))
    spec = registry.get("typed")
    fields = spec.params.model_fields
    assert list(fields) == ["env", "rate", "flag", "limit", "name", "day"]
    assert fields["limit"].description == "at most this many"
    typed = spec.validate({"env": "x", "rate": "2.5", "flag": "true", "limit": "3"})
    assert (typed.rate, typed.flag, typed.limit, typed.name) == (2.5, True, 3, None)
    assert typed.day == dt.date(2013, 1, 2)
    with pytest.raises(ConfigError, match="parameter 'limit'"):
        spec.validate({"env": "x", "limit": "some"})
    # a notebook without tarmac.job is no job, and neither is one whose JSON has no metadata
    _notebook(tmp_path, "explore", None, "x = 1")
    assert set(notebook_jobs.discover()) == {"typed", "delay_risk"}  # + notebooks/'s own


def test_a_name_declared_twice_is_refused(tmp_path: Path, monkeypatch) -> None:
    _notebook(tmp_path / "a", "smoke_again", {"name": "smoke"}, "env = 'ci'")
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="job 'smoke' is declared twice.*pipelines.jobs.smoke"):
        registry.get("weather_hourly")
    _notebook(tmp_path / "b", "one", {"name": "twin"}, "env = 'ci'")
    _notebook(tmp_path / "b", "two", {"name": "twin"}, "env = 'ci'")
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="one.ipynb and .*two.ipynb both declare job 'twin'"):
        registry.jobs()


def test_a_changed_notebook_is_read_again(tmp_path: Path, monkeypatch) -> None:
    path = _notebook(tmp_path, "changing", {"name": "changing"}, "env = 'ci'\nn = 1")
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path))
    assert registry.get("changing").validate({"env": "x"}).n == 1
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "env = 'ci'\nn = 22  # more"
    nb.metadata["tarmac"]["job"]["timeout_s"] = 5
    nbformat.write(nb, path)
    os.utime(path, ns=(1, 1))  # another mtime whatever the clock's resolution
    assert registry.get("changing").validate({"env": "x"}).n == 22
    assert registry.get("changing").timeout_s == 5


def test_the_script_gets_the_parameters_as_papermill_injects_them(test_jobs, tmp_path) -> None:
    spec = test_jobs["nb_job_sum"]
    values = {**spec.validate({"env": "ci", "n": "12"}).model_dump(mode="json"),
              registry.METRICS_PARAM: "/tmp/m.json"}  # fmt: skip
    script = notebook_jobs.export_script(spec, values, tmp_path / "s" / "nb_job_sum.py")
    text = script.read_text()
    compile(text, str(script), "exec")  # plain Python
    declared, injected = text.index("n: int = 1000"), text.index("# Parameters\n")
    assert declared < injected < text.index('lock = job_lock("nb_job_sum", env)')
    assert text[injected:].startswith(
        '# Parameters\nenv = "ci"\nn = 12\nbuckets = 7\nout = ""\n'
        'tarmac_metrics_path = "/tmp/m.json"\n'
    )
    assert "get_ipython" not in text and text.startswith("# Generated from tests/notebooks/")


def test_a_magic_cannot_be_promoted(tmp_path: Path, monkeypatch) -> None:
    path = _notebook(tmp_path, "magic", {"name": "magic"}, "env = 'ci'")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("%matplotlib inline\n!ls"))
    nbformat.write(nb, path)
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path))
    spec = registry.get("magic")
    with pytest.raises(ConfigError, match="uses IPython syntax.*cell 2: .%matplotlib inline."):
        notebook_jobs.export_script(spec, {"env": "ci"}, tmp_path / "magic.py")


def test_job_runs_the_notebook_in_process_and_prints_what_it_reported(tmp_path: Path) -> None:
    env = {**os.environ, notebook_jobs.NOTEBOOKS_ENV: "tests/notebooks",
           "TARMAC_OUTPUTS_DIR": str(tmp_path)}  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "job", "nb_job_hold", "--env", "ci",
         "-p", "label=cli", "-p", "day=2013-01-02"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == (
        "lock ci-nb_job_hold.lock: held by this process until lock.release() or the kernel stops"
    )
    assert json.loads(lines[-1]) == {
        "rows_in": 3, "rows_out": 3, "rows_rejected": None, "label": "cli", "day": "2013-01-02",
        "owner": "this process",
    }  # fmt: skip
    assert read_holder(tmp_path / "locks" / "ci-nb_job_hold.lock") == {}  # released at its end


HOLDER = """
import sys, time
from pathlib import Path
from pipelines.orchestration.locks import hold
held = hold("nb_job_hold", "ci", locks_dir=Path(sys.argv[1]))
print(held.owner, flush=True)
"""


def test_a_hand_run_takes_the_lock_or_says_who_holds_it(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    mine = hold("nb_job_hold", "ci", locks_dir=locks)
    try:
        assert mine.owner == "this process"
        assert hold("nb_job_hold", "ci", locks_dir=locks) is mine  # the cell run again
        holder = read_holder(lock_path(locks, "ci", "nb_job_hold"))
        assert holder["trigger"] == "a hand run (notebook kernel)"
        # another process (cron's run, another kernel) is refused, told by whom
        with pytest.raises(JobLockedError, match="by a hand run \\(notebook kernel\\)"):
            JobLock(lock_path(locks, "ci", "nb_job_hold"), job="nb_job_hold", env="ci").acquire()
        other = subprocess.run([sys.executable, "-c", HOLDER, str(locks)], capture_output=True,
                               text=True, cwd=REPO, timeout=60)  # fmt: skip
        assert other.returncode == 1
        assert f"job nb_job_hold (env ci) is already running: pid {os.getpid()}" in other.stderr
        assert "This notebook was not run: wait for that run to end" in other.stderr
    finally:
        mine.release()
    assert read_holder(lock_path(locks, "ci", "nb_job_hold")) == {}
    mine.release()  # twice: harmless


def test_under_the_runner_the_kernel_finds_the_runners_lock(tmp_path: Path) -> None:
    """The runner holds the lock and tells its kernel where (``$TARMAC_RUN_LOCK``); the kernel,
    a child of the runner, goes on without taking it."""
    path = lock_path(tmp_path / "elsewhere", "ci", "nb_job_hold")
    code = HOLDER.replace("locks_dir=Path(sys.argv[1])", "")
    with JobLock(path, job="nb_job_hold", env="ci", info={"run_id": "r-1", "trigger": "cron"}):
        child = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
            env={**os.environ, RUN_LOCK_ENV: str(path), "TARMAC_OUTPUTS_DIR": str(tmp_path)},
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == f"the runner (pid {os.getpid()}, run r-1)"
        assert read_holder(path)["run_id"] == "r-1"  # untouched


@pytest.mark.parametrize("path", sorted(TEST_NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_the_test_notebooks_are_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_every_notebook_job_of_notebooks_is_valid_and_clean(monkeypatch) -> None:
    """A notebook of notebooks/ that declares a job: its declaration holds (discovery raises
    otherwise), papermill reads its parameters, it is committed without outputs."""
    import papermill

    monkeypatch.delenv(notebook_jobs.NOTEBOOKS_ENV, raising=False)
    for name, spec in notebook_jobs.discover().items():
        assert spec.notebook.parts[0] == "notebooks" and registry.get(name) is spec
        inferred = papermill.inspect_notebook(str(spec.notebook_path))
        assert set(spec.params.model_fields) - {"env"} <= set(inferred)
        nb = nbformat.read(spec.notebook_path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


def test_the_defaults_are_the_job_specs(tmp_path: Path, monkeypatch) -> None:
    job = copy.deepcopy({"name": "plain"})
    _notebook(tmp_path, "plain", job, "env = 'ci'")
    monkeypatch.setenv(notebook_jobs.NOTEBOOKS_ENV, str(tmp_path))
    spec, base = registry.get("plain"), registry.JobSpec("x", Path("x.ipynb"), JobParams)
    assert (spec.timeout_s, spec.retries, spec.retry_backoff_s, spec.nice, spec.date_param) == (
        base.timeout_s, base.retries, base.retry_backoff_s, base.nice, base.date_param,
    )  # fmt: skip
    assert spec.description == "" and spec.schedule is None and spec.writes == ()


def test_the_spark_submit_entry_point_runs_a_notebook_job_too(tmp_path: Path) -> None:
    """``spark-submit pipelines/jobs/submit.py <job>``: the one entry point of the registry's
    jobs takes a notebook job as well (run here by python alone: what its driver runs)."""
    env = {**os.environ, notebook_jobs.NOTEBOOKS_ENV: "tests/notebooks",
           "TARMAC_OUTPUTS_DIR": str(tmp_path)}  # fmt: skip
    res = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "jobs" / "submit.py"), "nb_job_hold",
         "--env", "ci", "-p", "label=entry"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["label"] == "entry"


def test_backfill_takes_a_notebook_jobs_date_param(test_jobs) -> None:
    """A notebook job with a ``date_param`` is dated as a module job is: ``backfill`` sets it
    (an ISO string, validated as a date)."""
    spec = test_jobs["nb_job_hold"]
    typed = runner.validate(spec, "ci", {spec.date_param: dt.date(2013, 1, 2).isoformat()})
    assert typed.model_dump(mode="json") == {
        "env": "ci", "seconds": 0.0, "label": "hand", "day": "2013-01-02",
    }  # fmt: skip
