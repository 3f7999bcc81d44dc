"""The typed run record: :class:`RunStatus` (the ledger's statuses), :class:`RunRecord` (its
document) and :class:`JobFailedError` carrying its run. The documents the runner and the
service supervisor write are compared key for key, in order, with the dicts they wrote before
the record was typed (``old_*`` below, copied from them): the page, ``runs`` and housekeeping
read those documents (no Kafka, MongoDB, Spark nor kernel: the notebook's execution and the
ledger are stand-ins)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
import structlog.testing
from pydantic import ValidationError

from pipelines.core import config
from pipelines.core.domain import RUN_FAILED, RunStatus, run_failed
from pipelines.core.exceptions import (
    SERVICE_ERRORS,
    TRANSIENT_ERRORS,
    JobFailedError,
    JobLockedError,
    JobTimeoutError,
    ServiceUnavailableError,
    TarmacError,
    unavailable,
)
from pipelines.jobs import registry
from pipelines.jobs.registry import JobSpec
from pipelines.orchestration import backfill, notebook, runner, supervisor
from pipelines.orchestration.locks import JobLock, lock_path
from pipelines.orchestration.record import RunRecord
from pipelines.orchestration.runner import RunResult
from pipelines.orchestration.service import ServiceStatus

START = datetime(2026, 12, 4, 22, 15, 3, tzinfo=UTC)
END = START + timedelta(seconds=42)
RUN_ID = "20261204T221503-ab12cd"
NB = Path("/o/runs/weather_hourly/2026-12-04") / f"{RUN_ID}.ipynb"
PARAMS = {"env": "ci", "date": "2013-01-02"}


# --- the dicts the runner and the supervisor built before RunRecord (their very code) -----------
def old_attempt(
    run_id: str, spec: JobSpec, params: dict[str, Any], start: datetime, nb_path: Path,
    attempt: int, first_run_id: str | None, trigger: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "_id": run_id,
        "run_id": run_id,
        "job": spec.name,
        "env": "ci",
        "params": params,
        "date": params.get(spec.date_param) if spec.date_param else None,
        "status": "running",
        "start": start,
        "end": None,
        "duration_s": None,
        "rows_in": None,
        "rows_out": None,
        "rows_rejected": None,
        "metrics": {},
        "notebook": str(nb_path),
        "html": None,
        "log": str(nb_path.with_suffix(".log")),
        "error": None,
        "attempt": attempt,
        "max_attempts": spec.retries + 1,
        "first_run_id": first_run_id or run_id,
        "timeout_s": spec.timeout_s,
        "trigger": trigger,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def old_locked(run_id: str, spec: JobSpec, typed: dict, stamp: datetime, message: str) -> dict:
    return {
        "_id": run_id,
        "run_id": run_id,
        "job": spec.name,
        "env": "ci",
        "params": typed,
        "date": typed.get(spec.date_param) if spec.date_param else None,
        "status": "skipped_locked",
        "start": stamp,
        "end": stamp,
        "duration_s": 0.0,
        "error": {"type": "JobLockedError", "message": message},
        "attempt": 0,
        "trigger": "manual",
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def old_worker(run_id: str, params: dict, started: datetime, log: Path, starts: int,
               pid: int, parent: int) -> dict:  # fmt: skip
    return {
        "_id": run_id, "run_id": run_id, "job": "flights_stream",
        "env": "ci", "params": {"env": "ci", **params},
        "date": None, "status": "running", "start": started, "end": None,
        "duration_s": None, "rows_in": None, "rows_out": None, "rows_rejected": None,
        "metrics": {}, "notebook": None, "html": None, "log": str(log),
        "error": None, "attempt": starts, "trigger": "service",
        "host": socket.gethostname(), "pid": pid, "supervisor_pid": parent,
    }  # fmt: skip


def same(doc: dict[str, Any], old: dict[str, Any]) -> None:
    """The same document: keys in the same order, values equal and of the same type."""
    assert list(doc) == list(old)
    assert doc == old
    for key, value in old.items():
        assert type(doc[key]) is type(value), (key, doc[key], value)


# --- RunStatus ----------------------------------------------------------------------------------
def test_run_status_is_each_status_the_ledger_holds_as_its_plain_string() -> None:
    assert [s.value for s in RunStatus] == [
        "running", "success", "failed", "timeout", "skipped_locked", "stopped",
    ]  # fmt: skip
    assert RunStatus.FAILED == "failed" and {"failed"} == {RunStatus.FAILED}
    assert f"{RunStatus.SUCCESS:<8}|" == "success |"  # backfill's and summary lines
    assert json.dumps({"s": RunStatus.TIMEOUT}) == '{"s": "timeout"}'
    assert bson.decode(bson.encode({"s": RunStatus.STOPPED})) == {"s": "stopped"}
    assert type(bson.decode(bson.encode({"s": RunStatus.STOPPED}))["s"]) is str


def test_the_failures_are_failed_and_timeout_member_or_string() -> None:
    assert {"failed", "timeout"} == RUN_FAILED
    assert all(run_failed(s) == (s in (RunStatus.FAILED, RunStatus.TIMEOUT)) for s in RunStatus)
    assert run_failed("failed") and run_failed("timeout")
    for other in ("success", "running", "skipped_locked", "stopped", None, 3, ""):
        assert not run_failed(other)


def test_service_status_is_what_a_supervisor_says() -> None:
    assert [s.value for s in ServiceStatus] == [
        "starting", "waiting_for_job_lock", "running", "backoff", "stopping", "stopped",
    ]  # fmt: skip
    assert json.dumps({"status": ServiceStatus.BACKOFF}) == '{"status": "backoff"}'


# --- RunRecord ----------------------------------------------------------------------------------
def attempt_record(**changes: Any) -> RunRecord:
    spec = registry.get("weather_hourly")
    return RunRecord.attempt_started(
        run_id=RUN_ID, job=spec.name, env="ci", params=dict(PARAMS), date="2013-01-02",
        start=START, notebook=NB, attempt=1, max_attempts=spec.retries + 1,
        first_run_id=RUN_ID, timeout_s=spec.timeout_s, trigger="cron",
    ).replace(**changes)  # fmt: skip


def test_an_attempt_s_document_is_the_runner_s_former_dict() -> None:
    spec = registry.get("weather_hourly")
    old = old_attempt(RUN_ID, spec, dict(PARAMS), START, NB, 1, None, "cron")
    record = attempt_record()
    same(record.to_document(), old)
    assert len(old) == 25 and "supervisor_pid" not in record.to_document()
    assert type(record.to_document()["timeout_s"]) is int  # 900 as the registry has it
    # its outcome: the former doc.update(...) of the same keys, in place
    error = {"type": "KafkaTimeoutError", "message": "no broker", "cell": None, "transient": True}
    outcome = {"status": "failed", "end": END, "duration_s": 41.25, "rows_in": 3, "rows_out": 2,
               "rows_rejected": 1, "metrics": {"files": 1}, "notebook": str(NB),
               "html": str(NB.with_suffix(".html")), "error": error}  # fmt: skip
    old.update(outcome)
    done = record.replace(**{**outcome, "status": RunStatus.FAILED})
    same(done.to_document(), old)
    assert done.transient and not record.transient
    assert record.status == RunStatus.RUNNING  # frozen: the outcome is a new record


def test_a_locked_out_run_keeps_its_fifteen_keys() -> None:
    spec = registry.get("weather_hourly")
    message = "job weather_hourly (env ci) is already running: pid 1 on h since ?"
    record = RunRecord.locked_out(
        run_id=RUN_ID, job=spec.name, env="ci", params=dict(PARAMS), date="2013-01-02",
        at=START, message=message, trigger="manual",
    )  # fmt: skip
    old = old_locked(RUN_ID, spec, dict(PARAMS), START, message)
    same(record.to_document(), old)
    assert len(old) == 15
    assert "rows_in" not in record.replace(attempt=0).to_document()  # replace adds no key


def test_a_service_worker_s_document_is_the_supervisor_s_former_dict() -> None:
    params = {"trigger": "10s", "board_trigger": "500ms"}
    log = Path("/o/logs/service-flights_stream-ci.log")
    record = RunRecord.worker_started(
        run_id=RUN_ID, job="flights_stream", env="ci", params={"env": "ci", **params},
        start=START, log=log, attempt=3, pid=4242,
    )  # fmt: skip
    old = old_worker(RUN_ID, params, START, log, 3, 4242, os.getpid())
    same(record.to_document(), old)
    assert len(old) == 23 and "max_attempts" not in old and "timeout_s" not in old


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "failed"}, "status"),  # a status is a RunStatus, not any string
        ({"rows_in": "3"}, "rows_in"),
        ({"rows_in": True}, "rows_in"),
        ({"start": "2026-12-04T22:15:03Z"}, "start"),
        ({"attempt": 1.0}, "attempt"),
        ({"outcome": "ok"}, "outcome"),  # no key it does not know
    ],
)
def test_a_record_is_strict(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        attempt_record(**changes)


def test_a_record_is_frozen() -> None:
    record = attempt_record()
    with pytest.raises(ValidationError, match="frozen"):
        record.status = RunStatus.SUCCESS  # type: ignore[misc]


# --- the runner's documents, through run() ------------------------------------------------------
class Ledger:
    """The ledger's stand-in: every document written, as written."""

    docs: list[dict[str, Any]] = []

    def __init__(self, *_: Any) -> None:
        pass

    def write(self, doc: dict[str, Any]) -> bool:
        Ledger.docs.append(copy.deepcopy(doc))
        return True

    def flush_pending(self) -> int:
        return 0

    def mark_abandoned(self, *_: Any) -> None:
        raise AssertionError("no run was abandoned")


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any] | None]]:
    """The ledger and the notebook's execution replaced; the outcomes ``execute`` returns, in
    order (it writes the notebook and the metrics a run reports)."""
    Ledger.docs = []
    outcomes: list[tuple[str, dict[str, Any] | None]] = []

    def execute(spec: JobSpec, nb_path: Path, parameters: dict, runlog: Any) -> tuple:
        nb_path.write_text("{}")
        metrics = {"rows_in": 3, "rows_out": 2, "rows_rejected": 1, "files": 1}
        Path(parameters[registry.METRICS_PARAM]).write_text(json.dumps(metrics))
        return outcomes.pop(0)

    monkeypatch.setattr(runner, "Ledger", Ledger)
    monkeypatch.setattr(notebook, "execute", execute)
    monkeypatch.setattr(notebook, "prefetch_renderer", lambda: None)
    monkeypatch.setattr(notebook, "render_html", lambda nb, html, log: True)
    return outcomes


def test_run_writes_the_former_documents_of_each_attempt(stand_ins, tmp_path: Path) -> None:
    spec = registry.get("weather_hourly")
    broker = {"type": "NoBrokersAvailable", "message": "NoBrokersAvailable", "cell": None}
    stand_ins += [(RunStatus.FAILED, broker), (RunStatus.SUCCESS, None)]
    waits: list[float] = []
    with structlog.testing.capture_logs() as echoed:
        result = runner.run(spec, "ci", {"date": "2013-01-02"}, trigger="cron",
                            outputs=tmp_path, sleep=waits.append)  # fmt: skip
    # the console's key=value lines (a failure's at least: the tests log from WARNING) show
    # the plain string, not the member's repr
    ends = [e for e in echoed if e["event"] == "run.end"]
    assert ends and all(type(e["status"]) is str for e in ends)
    lines = (tmp_path / "logs" / "runner.log").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [e["status"] for e in logged if e["event"] == "run.end"] == ["failed", "success"]
    assert waits == [spec.retry_backoff_s]  # a transient failure, retried once
    assert result.status == RunStatus.SUCCESS and [r.attempt for r in result.records] == [1, 2]
    first = result.records[0].run_id
    assert len(Ledger.docs) == 4  # each attempt: running, then its outcome
    for i, (begun, ended) in enumerate([Ledger.docs[0:2], Ledger.docs[2:4]]):
        nb = Path(begun["notebook"])
        assert nb.parent == tmp_path / "runs" / spec.name / begun["start"].strftime("%Y-%m-%d")
        old = old_attempt(begun["run_id"], spec, PARAMS, begun["start"], nb, i + 1,
                          None if i == 0 else first, "cron")  # fmt: skip
        same(begun, old)
        old.update(status="failed" if i == 0 else "success", end=ended["end"],
                   duration_s=ended["duration_s"], rows_in=3, rows_out=2, rows_rejected=1,
                   metrics={"files": 1}, notebook=str(nb), html=str(nb.with_suffix(".html")),
                   error={**broker, "transient": True} if i == 0 else None)  # fmt: skip
        same(ended, old)
        assert type(ended["duration_s"]) is float
    assert result.attempts == [Ledger.docs[1], Ledger.docs[3]]
    assert result.last == Ledger.docs[3] and result.run_id == Ledger.docs[3]["_id"]


def test_a_failed_run_raises_its_result(stand_ins, tmp_path: Path) -> None:
    spec = registry.get("weather_hourly")
    error = {"type": "ValueError", "message": "bad row",
             "cell": {"index": 4, "execution_count": 3, "source": "run_job(x)\nmore"}}  # fmt: skip
    stand_ins.append((RunStatus.FAILED, error))
    with pytest.raises(JobFailedError) as err:
        runner.run(spec, "ci", {"date": "2013-01-02"}, outputs=tmp_path, sleep=pytest.fail)
    assert type(err.value) is JobFailedError and err.value.exit_code == 9
    result = err.value.result
    assert isinstance(result, RunResult) and len(result.attempts) == 1  # not transient
    assert result.status == RunStatus.FAILED and result.last == Ledger.docs[-1]
    message = str(err.value)
    assert err.value.args == (message,)
    assert message.startswith("job weather_hourly (env ci) failed: ValueError: bad row\n"
                              "  cell:     4 `run_job(x)`\n  notebook: ")  # fmt: skip
    assert f"  run id:   {result.run_id} (tarmac runs --env ci)" in message


def test_a_timed_out_run_raises_job_timeout_error(stand_ins, tmp_path: Path) -> None:
    spec = registry.get("weather_hourly")
    timeout = {"type": "JobTimeout", "message": "ran past", "cell": None}
    stand_ins.append((RunStatus.TIMEOUT, timeout))
    with pytest.raises(JobTimeoutError) as err:
        runner.run(spec, "ci", {"date": "2013-01-02"}, outputs=tmp_path, sleep=pytest.fail)
    assert err.value.exit_code == 10 and "timed out: JobTimeout: ran past" in str(err.value)
    assert err.value.result.status == "timeout"
    assert Ledger.docs[-1]["error"]["transient"] is False


def test_a_run_the_lock_refuses_writes_the_former_document(stand_ins, tmp_path: Path) -> None:
    spec = registry.get("weather_hourly")
    held = lock_path(tmp_path / "locks", "ci", spec.name)
    with JobLock(held, job=spec.name, env="ci"), pytest.raises(JobLockedError) as err:
        runner.run(spec, "ci", {"date": "2013-01-02"}, outputs=tmp_path)
    (doc,) = Ledger.docs
    same(doc, old_locked(doc["_id"], spec, PARAMS, doc["start"], str(err.value)))


def test_backfill_notes_the_status_of_a_failed_or_locked_run(stand_ins, tmp_path, monkeypatch):
    spec = registry.get("weather_hourly")
    monkeypatch.setattr(backfill, "Ledger", type("L", (Ledger,), {"last_status": lambda *a: None}))
    stand_ins += [(RunStatus.SUCCESS, None), (RunStatus.FAILED, {"type": "X", "message": "m"})]
    day = datetime(2013, 1, 2).date()
    with pytest.raises(JobFailedError):
        backfill.backfill(spec, day, day + timedelta(days=2), "ci", outputs=tmp_path)
    docs = [d for d in Ledger.docs if d["status"] != "running"]
    outcomes = [(d["date"], d["status"]) for d in docs]
    assert outcomes == [("2013-01-02", "success"), ("2013-01-03", "failed")]
    with JobLock(lock_path(tmp_path / "locks", "ci", spec.name), job=spec.name, env="ci"):
        seen: list[backfill.BackfillOutcome] = []
        with pytest.raises(JobLockedError):
            backfill.backfill(spec, day, day, "ci", outputs=tmp_path, on_outcome=seen.append)
    assert [(o.status, o.run_id) for o in seen] == [(RunStatus.SKIPPED_LOCKED, None)]


# --- the supervisor's documents -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "requested", "status"),
    [(0, True, "stopped"), (0, False, "success"), (-9, False, "failed")],
)
def test_a_worker_s_end_is_the_supervisor_s_former_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, requested: bool, status: str
) -> None:
    monkeypatch.setenv("TARMAC_OUTPUTS_DIR", str(tmp_path))
    sup = supervisor.Supervisor(config.load("ci"), "flights_stream", None, echo=False)
    Ledger.docs = []
    sup.ledger = Ledger()  # type: ignore[assignment]
    sup.record = RunRecord.worker_started(
        run_id=RUN_ID, job="flights_stream", env="ci", params={"env": "ci", **sup.params},
        start=START, log=sup.paths.log, attempt=2, pid=4242,
    )  # fmt: skip
    sup.last_json = {"rows_in": 12, "accepted": 11, "rejected": 1, "batches": 2}
    sup._close_run(code, 61.5, requested=requested, wait=4.0)  # noqa: SLF001
    sup._close_run(code, 61.5, requested=requested, wait=4.0)  # noqa: SLF001 - once only
    (doc,) = Ledger.docs
    old = old_worker(RUN_ID, sup.params, START, sup.paths.log, 2, 4242, os.getpid())
    old.update(end=doc["end"], duration_s=61.5, rows_in=12, rows_out=11, rows_rejected=1)
    old["status"] = status
    if status == "failed":
        old["error"] = {"type": "WorkerExited", "transient": True,
                        "message": f"killed by SIGKILL after 62 s; restarted in 4 s by its "
                        f"supervisor (log {sup.paths.log})"}  # fmt: skip
    same(doc, old)


def test_a_worker_s_counts_are_counts_or_unknown() -> None:
    assert supervisor._count(12) == 12  # noqa: SLF001
    for other in (None, True, "12", 1.5, {"n": 1}):
        assert supervisor._count(other) is None  # noqa: SLF001


# --- JobFailedError and the services' error names -----------------------------------------------
def test_job_failed_error_carries_its_result_from_its_constructor() -> None:
    result = RunResult([attempt_record(status=RunStatus.FAILED)])
    for kind in (JobFailedError, JobTimeoutError):
        exc = kind("job x failed", result)
        assert isinstance(exc, TarmacError) and exc.result is result
        assert str(exc) == "job x failed" and exc.args == ("job x failed",)
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is kind and str(again) == str(exc) and again.result == result
    assert result.status == RunStatus.FAILED and result.run_id == RUN_ID
    failed = attempt_record(status=RunStatus.FAILED).to_document()
    assert result.last == result.attempts[0] == failed


def test_the_transient_errors_are_every_service_s_client_errors_and_ours() -> None:
    clients = {name for names in SERVICE_ERRORS.values() for name in names}
    assert clients | {"ServiceUnavailableError"} == TRANSIENT_ERRORS
    assert set(SERVICE_ERRORS) == {"MongoDB", "Kafka"}


@pytest.mark.parametrize(
    ("etype", "message", "transient"),
    [
        ("ServiceUnavailableError", "MongoDB at ... does not answer", True),
        ("ServerSelectionTimeoutError", "", True),
        ("NoBrokersAvailable", "", True),
        ("KafkaTimeoutError", "", True),
        ("KafkaConnectionError", "", True),
        ("StreamingQueryException", "... pymongo.errors.ServerSelectionTimeoutError: ...", True),
        ("Py4JJavaError", "... kafka.errors.NoBrokersAvailable ...", True),
        ("StreamingQueryException", "AnalysisException: column x", False),
        ("ValueError", "ServiceUnavailableError in the text only", False),
        ("KeyboardInterrupt", "", False),
    ],
)
def test_only_unreachable_services_are_transient(etype: str, message: str, transient: bool):
    assert runner.is_transient({"type": etype, "message": message}) is transient


def test_a_service_gone_mid_job_is_named_from_the_same_names() -> None:
    addresses = {"MongoDB": "mongodb://127.0.0.1:1/", "Kafka": "127.0.0.1:2"}
    for service, names in SERVICE_ERRORS.items():
        for name in names:
            named = unavailable(RuntimeError(f"Traceback ...\nerrors.{name}: gone"), addresses)
            assert isinstance(named, ServiceUnavailableError), name
            assert str(named).startswith(f"{service} at {addresses[service]} stopped answering")
    jvm = unavailable(RuntimeError("org.apache.kafka.common.errors.DisconnectException"),
                      addresses)  # fmt: skip
    assert jvm is not None and str(jvm).startswith("Kafka at 127.0.0.1:2")
    assert unavailable(ValueError("a bug"), addresses) is None
