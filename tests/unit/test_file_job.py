"""The file jobs' skeleton (``jobs/file_job.run_file_job``) on a real landing zone, without
Spark: what it claims, quarantines and writes as rejects, what ``process`` sees, the counts and
state it records, and the run failing once a file did not reconcile. The jobs' ``process``
functions (Spark) run in ``tests/integration`` and ``tests/e2e``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipelines.core import config
from pipelines.core.exceptions import ReconcileError
from pipelines.core.files import write_atomic
from pipelines.jobs import file_job
from pipelines.jobs.file_job import FileRun
from pipelines.landing.ingest import FileReject
from pipelines.landing.manifest import LandedFile
from pipelines.landing.zone import LandingZone

JOB, SOURCE = "weather_hourly", "weather"
HEADER = ["station", "ts", "temp_c"]
GOOD = b"station,ts,temp_c\nS1,2024-01-01T00,1.5\nS2,2024-01-01T00,2.0\n"
NEWEST = datetime(2024, 1, 1)


def header_of(f: LandedFile) -> list[str] | str:
    return "bad name" if "bad" in f.name else HEADER


@pytest.fixture
def writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The skeleton's outside world recorded: the zone under ``tmp_path``, no Spark, the
    reject rows and the state it would write."""
    seen: dict[str, list[Any]] = {"sessions": [], "rejects": [], "state": []}
    monkeypatch.setattr(file_job.ingest, "zone", lambda settings: LandingZone(tmp_path))
    monkeypatch.setattr(file_job, "build_session",
                        lambda settings, app: seen["sessions"].append(app) or "spark")  # fmt: skip
    monkeypatch.setattr(file_job.rejects, "file_rows", lambda spark, files, at: list(files))
    monkeypatch.setattr(file_job.publish, "publish_rejects",
                        lambda lake, store, rows: seen["rejects"].extend(rows))  # fmt: skip

    def set_state(store: object, job: str, newest: datetime | None, **kw: Any) -> None:
        seen["state"].append((newest, kw))

    monkeypatch.setattr(file_job.sinks, "set_state", set_state)
    return seen


def drop(root: Path, name: str, data: bytes) -> None:
    write_atomic(root / "landing" / SOURCE / name, data)


def run(process: Any) -> dict[str, Any]:
    return file_job.run_file_job(config.load("ci"), JOB, SOURCE, header_of, "*.csv", process)


def test_nothing_pending_starts_no_spark_and_records_zeros(writes) -> None:
    result = run(lambda r: pytest.fail("no file: nothing to process"))
    assert writes["sessions"] == [] and writes["rejects"] == []
    counted = ("files", "rows_in", "accepted", "rejected", "unreconciled")
    assert {k: result[k] for k in counted} == dict.fromkeys(counted, 0)
    assert writes["state"] == [(None, {"last_run": result})]


def test_good_files_are_processed_committed_and_counted(tmp_path: Path, writes) -> None:
    drop(tmp_path, "a_good.csv", GOOD)
    drop(tmp_path, "b_bad.csv", GOOD + b"S3,2024-01-01T00,3\n")
    seen: list[list[str]] = []

    def process(r: FileRun) -> datetime:
        seen.append([f.name for f in r.files])
        r.commit(r.files, {"a_good.csv": (2, 0)})
        return NEWEST

    result = run(process)
    assert seen == [["a_good.csv"]] and writes["sessions"] == [JOB]
    assert writes["rejects"] == [FileReject(JOB, "bad name", "weather/b_bad.csv")]
    assert (result["files"], result["quarantined"]) == (1, 1)
    assert (result["rows_in"], result["accepted"], result["rejected"]) == (2, 2, 0)
    assert writes["state"] == [(NEWEST, {"last_run": result})]
    statuses = {r["name"]: r["status"] for r in LandingZone(tmp_path).manifest.records(SOURCE)}
    assert statuses == {"a_good.csv": "processed", "b_bad.csv": "quarantined"}


def test_a_file_that_does_not_reconcile_fails_the_run_after_the_others(
    tmp_path: Path, writes
) -> None:
    drop(tmp_path, "a.csv", GOOD)
    drop(tmp_path, "b.csv", GOOD + b"S3,2024-01-01T00,3\n")

    def process(r: FileRun) -> None:
        r.set_aside({"a.csv": (2, 0), "b.csv": (2, 0)})  # Spark read 2 of b's 3 rows
        assert [f.name for f in r.files] == ["a.csv"]
        assert [x.where for x in writes["rejects"]] == ["weather/b.csv"]  # written at once
        r.commit(r.files, {"a.csv": (2, 0)})

    with pytest.raises(ReconcileError, match="b.csv"):
        run(process)
    ((newest, state),) = writes["state"]  # recorded before the run fails
    assert newest is None
    assert state["last_run"]["unreconciled"] == 1 and state["last_run"]["accepted"] == 2
    assert writes["rejects"][0].reason.startswith("unreconciled: the file check counted 3 rows")
