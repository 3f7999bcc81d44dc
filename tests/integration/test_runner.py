"""The runner against the real ``ci`` stack: papermill runs, ledger, lock, timeout, retries,
MongoDB down and back, backfill. Only one test starts Spark (the smoke notebook); the others
use the tiny fixture job (tests/fixtures/tiny_job.ipynb: sleeps, fails on request)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from pipelines.clients import mongo
from pipelines.core.exceptions import ConfigError, JobFailedError, JobLockedError, JobTimeoutError
from pipelines.orchestration import backfill, notebook, report, runner
from pipelines.orchestration.ledger import COLLECTION
from pipelines.orchestration.locks import read_holder
from pipelines.stack.services import FerretDBService
from tests.conftest import dedicated_stack, write_parameters
from tests.fixtures.jobs import TINY

REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------------
def _env(outputs: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TARMAC_JOBS_MODULE": "tests.fixtures.jobs",
        "TARMAC_OUTPUTS_DIR": str(outputs),
        "TARMAC_LOG_FORMAT": "kv",
        **extra,
    }


def _cli(
    outputs: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(outputs, **env),
        timeout=timeout,
    )


def _popen(outputs: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=_env(outputs),
    )


def _wait_for(predicate, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _log(outputs: Path) -> list[dict[str, Any]]:
    path = outputs / "logs" / "runner.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _ledger(settings):
    return mongo.database(settings)[COLLECTION]


def _error_outputs(nb_path: str | Path) -> list[dict[str, Any]]:
    nb = nbformat.read(nb_path, as_version=4)
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]


# --- pure ---------------------------------------------------------------------------------------
def test_report_writes_a_sidecar_only_when_the_runner_asks(tmp_path: Path) -> None:
    assert report.report(rows_in=5, rows_out=4, rows_rejected=1) == {
        "rows_in": 5,
        "rows_out": 4,
        "rows_rejected": 1,
    }
    target = tmp_path / "m" / "run.metrics.json"
    report.report(rows_in=2, path=target, tag="x")
    assert json.loads(target.read_text()) == {
        "rows_in": 2,
        "rows_out": None,
        "rows_rejected": None,
        "tag": "x",
    }
    with pytest.raises(ValueError, match="rows_out must be a count"):
        report.report(rows_out=-1)


def test_bad_parameters_are_refused_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    with pytest.raises(ConfigError, match="unknown parameter 'secs'.*seconds \\(float"):
        runner.run(TINY, "ci", {"secs": "1"}, outputs=out)
    with pytest.raises(ConfigError, match="parameter 'seconds'.*'abc'"):
        runner.run(TINY, "ci", {"seconds": "abc"}, outputs=out)
    assert not out.exists()  # no lock, no notebook, no log, no ledger write
    res = _cli(out, "run", "tiny", "--env", "ci", "-p", "fail=sometimes")
    assert res.returncode == ConfigError.exit_code == 2
    assert "error: job tiny: parameter 'fail'" in res.stderr
    assert "Allowed parameters: env (str, required), seconds (float, default 0.0)" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


# --- against the stack --------------------------------------------------------------------------
@pytest.mark.integration
def test_smoke_job_through_the_runner(stack, iso, tmp_path, monkeypatch) -> None:
    """The real smoke notebook (Kafka -> Spark -> MongoDB), once, on its own topic/checkpoint."""
    write_parameters(iso, tmp_path / "parameters")
    monkeypatch.setenv("TARMAC_PARAMETERS_DIR", str(tmp_path / "parameters"))  # for the kernel
    out = tmp_path / "outputs"

    result = runner.run("smoke", "ci", {"messages": "200"}, outputs=out)

    assert result.status == "success"
    doc = _ledger(stack).find_one({"_id": result.run_id})
    assert doc["status"] == "success" and doc["job"] == "smoke" and doc["env"] == "ci"
    assert doc["params"] == {
        "env": "ci", "messages": 200, "topic": None, "collection": "smoke_events",
        "checkpoint": None,
    }  # fmt: skip
    assert (doc["rows_in"], doc["rows_out"], doc["rows_rejected"]) == (200, 200, 0)
    assert doc["metrics"]["batches"] >= 1
    assert doc["attempt"] == 1 and doc["error"] is None
    assert doc["pid"] == os.getpid() and doc["host"]
    assert doc["end"] > doc["start"]
    assert 0 < doc["duration_s"] <= (doc["end"] - doc["start"]).total_seconds()
    nb_path, html_path = Path(doc["notebook"]), Path(doc["html"])
    day = doc["start"].strftime("%Y-%m-%d")
    assert nb_path == out / "runs" / "smoke" / day / f"{result.run_id}.ipynb"
    assert html_path == nb_path.with_suffix(".html")
    assert html_path.stat().st_size > 10_000 and "Smoke job" in html_path.read_text()
    nb = nbformat.read(nb_path, as_version=4)
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")
    assert "injected-parameters" in nb.cells[2].metadata.tags
    assert "messages = 200" in nb.cells[2].source
    assert not _error_outputs(nb_path)
    events = [e["event"] for e in _log(out)]
    assert events[-2:] == ["run.start", "run.end"]


@pytest.mark.integration
def test_two_simultaneous_runs_one_runs_one_exits_locked(stack, tmp_path) -> None:
    out = tmp_path / "outputs"
    message = 'x"; raise SystemExit(3) #'  # data, never code
    first = _popen(out, "run", "tiny", "--env", "ci", "-p", "seconds=6", "-p", f"message={message}")
    try:
        lock = out / "locks" / "ci-tiny.lock"
        _wait_for(lambda: read_holder(lock).get("run_id"), what="the first run's lock")
        started = time.monotonic()
        second = _cli(out, "run", "tiny", "--env", "ci", timeout=60)
        assert time.monotonic() - started < 15
        assert first.poll() is None, "the first run should still be running"
        assert second.returncode == JobLockedError.exit_code == 8, second.stderr
        assert "error: job tiny (env ci) is already running: pid" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        stdout, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
    finally:
        if first.poll() is None:
            first.kill()
    assert stdout.split()[:3] == ["tiny", "(ci)", "success"], stdout
    assert "in 3 · out 2 · rejected 1" in stdout
    runs = {e["run_id"]: e for e in _log(out) if e["event"] in ("run.end", "run.skipped_locked")}
    statuses = sorted(_ledger(stack).find_one({"_id": run_id})["status"] for run_id in runs)
    assert statuses == ["skipped_locked", "success"]
    (done,) = [e for e in runs.values() if e["event"] == "run.end"]
    doc = _ledger(stack).find_one({"_id": done["run_id"]})
    assert doc["params"]["message"] == message
    assert doc["metrics"]["message"] == message  # what the notebook saw
    assert (doc["rows_in"], doc["rows_out"], doc["rows_rejected"]) == (3, 2, 1)


@pytest.mark.integration
def test_a_killed_run_leaves_a_lock_the_next_run_takes_over(stack, tmp_path) -> None:
    out = tmp_path / "outputs"
    holder = _popen(out, "run", "tiny", "--env", "ci", "-p", "seconds=120")
    try:
        lock = out / "locks" / "ci-tiny.lock"
        killed_run = _wait_for(lambda: read_holder(lock).get("run_id"), what="lock")
        _wait_for(lambda: _ledger(stack).find_one({"_id": killed_run}), what="running doc")
        family = psutil.Process(holder.pid).children(recursive=True)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    for proc in family:  # its kernel would follow within a second or two; do not wait for it
        if proc.is_running():
            proc.kill()
    assert read_holder(lock)["pid"] == holder.pid  # the dead holder's line is still there

    result = runner.run(TINY, "ci", {}, outputs=out)

    assert result.status == "success"
    takeover = [e for e in _log(out) if e["event"] == "lock.stale_taken_over"]
    assert takeover and takeover[-1]["previous"]["pid"] == holder.pid
    abandoned = _ledger(stack).find_one({"_id": killed_run})
    assert abandoned["status"] == "failed"
    assert abandoned["error"]["type"] == "Abandoned"
    assert f"pid {holder.pid}" in abandoned["error"]["message"]


@pytest.mark.integration
def test_a_notebook_error_fails_at_once_and_keeps_the_notebook(stack, tmp_path) -> None:
    out = tmp_path / "outputs"
    with pytest.raises(JobFailedError) as err:
        runner.run(TINY, "ci", {"fail": "value"}, outputs=out)
    assert type(err.value) is JobFailedError and err.value.exit_code == 9
    result = err.value.result
    assert len(result.attempts) == 1  # a ValueError is not transient: no retry
    doc = _ledger(stack).find_one({"_id": result.run_id})
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "ValueError"
    assert doc["error"]["message"] == "fixture failure requested"
    assert doc["error"]["cell"]["index"] is not None
    assert 'raise ValueError("fixture failure requested")' in doc["error"]["cell"]["source"]
    assert any("ValueError" in line for line in doc["error"]["traceback"])
    assert doc["error"]["transient"] is False
    assert "ValueError: fixture failure requested\n  cell:     " in str(err.value)
    assert [o["ename"] for o in _error_outputs(doc["notebook"])] == ["ValueError"]
    assert Path(doc["html"]).is_file()
    assert doc["rows_in"] is None  # the report cell never ran


@pytest.mark.integration
def test_a_run_past_its_timeout_is_interrupted(stack, tmp_path) -> None:
    out = tmp_path / "outputs"
    spec = dataclasses.replace(TINY, timeout_s=3)
    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as err:
        runner.run(spec, "ci", {"seconds": "60"}, outputs=out)
    assert time.monotonic() - started < 30
    assert err.value.exit_code == 10 and "timed out" in str(err.value)
    result = err.value.result
    assert len(result.attempts) == 1  # a timeout is not retried
    doc = _ledger(stack).find_one({"_id": result.run_id})
    assert doc["status"] == "timeout"
    assert doc["error"]["type"] == "JobTimeout"
    assert "time.sleep(seconds)" in doc["error"]["cell"]["source"]
    nb = nbformat.read(doc["notebook"], as_version=4)
    assert "tarmac-error" in nb.cells[0].metadata.tags and "timeout of 3 s" in nb.cells[0].source
    assert not notebook._kernels()  # noqa: SLF001 - no kernel left behind


@pytest.mark.integration
def test_mongo_down_fails_cleanly_then_recovers(stack, tmp_path) -> None:
    """On a FerretDB of its own (the session's serves the other modules meanwhile): down at
    first, started before the second run."""
    out = tmp_path / "outputs"
    own = dedicated_stack(stack, tmp_path, "tarmac_runner_down")
    write_parameters(own, tmp_path / "params")
    params = {"TARMAC_PARAMETERS_DIR": str(tmp_path / "params")}
    ferret = FerretDBService(own)
    res = _cli(out, "run", "tiny", "--env", "ci", "-p", "fail=mongo", timeout=180, **params)

    # failed, non-zero, after a retry (MongoDB unreachable is transient)
    assert res.returncode == JobFailedError.exit_code == 9, res.stderr[-2000:]
    assert "failed after 2 attempts: ServiceUnavailableError" in res.stderr
    assert "Traceback" not in res.stderr
    events = _log(out)
    ends = [e for e in events if e["event"] == "run.end"]
    assert [e["status"] for e in ends] == ["failed", "failed"]
    assert all(e["error"]["type"] == "ServiceUnavailableError" for e in ends)
    assert [e["event"] for e in events].count("run.retry") == 1
    assert any(e["event"] == "ledger.write_failed" for e in events)
    for end in ends:
        assert "ServiceUnavailableError" in [o["ename"] for o in _error_outputs(end["notebook"])]
    pending = [
        json.loads(line)
        for line in (out / "logs" / "ledger-pending.jsonl").read_text().splitlines()
    ]
    assert {d["_id"] for d in pending} == {e["run_id"] for e in ends}
    assert {d["status"] for d in pending} == {"running", "failed"}

    # back up: the same job succeeds, and the pending documents reach the ledger
    ferret.start()
    try:
        again = _cli(out, "run", "tiny", "--env", "ci", "-p", "fail=mongo", timeout=180, **params)
        assert again.returncode == 0, again.stderr[-2000:]
        (last,) = [e for e in _log(out) if e["event"] == "run.end"][len(ends) :]
        assert last["status"] == "success"
        coll = _ledger(own)
        assert coll.find_one({"_id": last["run_id"]})["status"] == "success"
        for end in ends:
            doc = coll.find_one({"_id": end["run_id"]})
            assert doc["status"] == "failed" and doc["error"]["type"] == "ServiceUnavailableError"
        assert (out / "logs" / "ledger-pending.jsonl").read_text() == ""
    finally:
        ferret.stop()


@pytest.mark.integration
def test_backfill_runs_each_date_once_in_order(stack, tmp_path) -> None:
    out = tmp_path / "outputs"
    base = dt.date(1900, 1, 1) + dt.timedelta(days=random.randrange(50_000))  # fresh dates
    days = [base + dt.timedelta(days=i) for i in range(3)]
    runner.run(TINY, "ci", {"date": days[1].isoformat()}, outputs=out)  # already done

    outcomes = backfill.backfill(TINY, days[0], days[2], "ci", outputs=out)

    assert [(o.date, o.status) for o in outcomes] == [
        (days[0], "success"),
        (days[1], "skipped"),
        (days[2], "success"),
    ]
    docs = [_ledger(stack).find_one({"_id": o.run_id}) for o in (outcomes[0], outcomes[2])]
    for outcome, doc in zip((outcomes[0], outcomes[2]), docs, strict=True):
        assert doc["date"] == outcome.date.isoformat() and doc["trigger"] == "backfill"
        assert doc["metrics"]["date"] == outcome.date.isoformat()
    # in date order: the first date's run ended before the last one's began (run ids sort by
    # their second only: two runs of a tiny job often share one)
    assert docs[0]["end"] <= docs[1]["start"], docs
    again = backfill.backfill(TINY, days[0], days[2], "ci", outputs=out)
    assert [o.status for o in again] == ["skipped"] * 3

    with pytest.raises(ConfigError, match="takes no date"):
        backfill.backfill("smoke", days[0], days[2], "ci", outputs=out)
    with pytest.raises(ConfigError, match="before"):
        backfill.backfill(TINY, days[2], days[0], "ci", outputs=out)

    res = _cli(out, "runs", "--env", "ci", "--job", "tiny", "--limit", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split()[:3] == ["RUN_ID", "JOB", "STATUS"]
    assert outcomes[2].run_id in res.stdout
