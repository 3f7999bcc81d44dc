"""The housekeeping policy (pipelines/jobs/retention.py) and its parameters: which run records,
ledger documents and logs go, each job's newest failure kept, the refusals and their reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.cli import build_parser
from pipelines.core.exceptions import ConfigError
from pipelines.jobs import params, registry, retention
from pipelines.jobs.retention import Freed, LogFile, RunFiles

NOW = datetime(2026, 12, 4, 3, 30, tzinfo=UTC)
SPEC = registry.JOBS["housekeeping"]


def run_id(days_ago: float, suffix: str = "abcdef") -> str:
    return f"{NOW - timedelta(days=days_ago):%Y%m%dT%H%M%S}-{suffix}"


def record(job: str, days_ago: float, suffix: str = "abcdef") -> RunFiles:
    rid = run_id(days_ago, suffix)
    return RunFiles(job, rid, ((f"/o/runs/{job}/d/{rid}.ipynb", 100),
                                (f"/o/runs/{job}/d/{rid}.html", 50)))  # fmt: skip


def doc(job: str, days_ago: float, status: str = "success", suffix: str = "abcdef") -> dict:
    return {"_id": run_id(days_ago, suffix), "job": job, "status": status,
            "start": NOW - timedelta(days=days_ago)}  # fmt: skip


# ---------------------------------------------------------------------------- run records
def test_run_records_older_than_the_days_go_except_the_newest_failure_and_running() -> None:
    ages = (1, 13.9, 14.1, 20, 30)
    records = [record("weather_hourly", d, f"{i:06x}") for i, d in enumerate(ages)]
    records.append(record("reference_daily", 40, "00000a"))
    records.append(record("smoke", 50, "00000b"))
    records.append(RunFiles("smoke", "not-a-run-id", (("/o/runs/smoke/d/x.txt", 1),)))
    ledger = [
        doc("weather_hourly", 20, "failed", "000003"),  # newest failure of weather_hourly
        doc("weather_hourly", 30, "failed", "000004"),  # an older one: goes
        doc("reference_daily", 40, "timeout", "00000a"),  # a timeout counts as a failure
    ]
    failures = retention.newest_failures(ledger)
    assert failures == {"weather_hourly": run_id(20, "000003"),
                        "reference_daily": run_id(40, "00000a")}  # fmt: skip
    running = [run_id(50, "00000b")]  # a run the ledger says is still going
    doomed = retention.run_records_to_delete(records, failures, running, NOW, days=14)
    assert [r.run_id for r in doomed] == [run_id(14.1, "000002"), run_id(30, "000004")]
    assert sum(r.size for r in doomed) == 300


def test_run_record_start_and_grouping() -> None:
    assert record("smoke", 2).start == (NOW - timedelta(days=2)).replace(microsecond=0)
    assert retention.run_id_of("20261204T031500-ab12cd.metrics.json") == "20261204T031500-ab12cd"
    assert RunFiles("smoke", "notes", ()).start is None


# ---------------------------------------------------------------------------------- ledger
def test_ledger_keeps_what_the_page_and_runs_show() -> None:
    docs = [doc("weather_hourly", 40 + i, suffix=f"{i:06x}") for i in range(25)]  # all old
    docs += [doc("weather_hourly", 1 + i / 10, suffix=f"1{i:05x}") for i in range(3)]  # recent
    docs.append(doc("weather_hourly", 90, "failed", "f00001"))  # newest failure: kept
    docs.append(doc("weather_hourly", 95, "failed", "f00002"))  # older failure: goes
    docs.append(doc("smoke", 100, "running", "r00001"))  # still going: kept
    docs.append({"_id": "damaged", "job": "smoke", "status": "success"})  # no start
    doomed = retention.ledger_to_delete(docs, NOW, days=30, keep_per_job=20)
    # the 3 recent ones + the 17 newest old ones are the newest 20; 8 old ones go
    expected = [run_id(40 + i, f"{i:06x}") for i in range(17, 25)] + [run_id(95, "f00002")]
    # the damaged document is the newest 20 of smoke (2 documents), so kept too
    assert doomed == expected


def test_ledger_days_keep_recent_runs_beyond_the_count() -> None:
    docs = [doc("weather_hourly", i / 24, suffix=f"{i:06x}") for i in range(100)]  # 4 days
    assert retention.ledger_to_delete(docs, NOW, days=8, keep_per_job=20) == []
    assert len(retention.ledger_to_delete(docs, NOW + timedelta(days=30), 8, 20)) == 80


# ------------------------------------------------------------------------------------ logs
def test_logs_rolled_past_the_size_and_deleted_when_not_written_for_days() -> None:
    old, fresh = NOW - timedelta(days=20), NOW - timedelta(hours=1)
    files = [
        LogFile("runner.log", 2_000_000, fresh),
        LogFile("tarmac.log", 10, fresh),  # small: stays
        LogFile("empty.log", 0, old),
        LogFile("service-flights_stream-local.log", 9_000_000, fresh),  # its own rotation
        LogFile("service-flights_stream-local.log.2", 9_000_000, old),
        LogFile("ledger-pending.jsonl", 5, old),
        LogFile("runner.20261101T033000.log", 1_000, old),
        LogFile("tarmac.20261201T033000.log", 1_000, fresh),  # still written by a process
    ]
    assert [f.name for f in retention.logs_to_roll(files, 1024**2)] == ["runner.log"]
    assert [f.name for f in retention.logs_to_roll(files, 0)] == ["runner.log", "tarmac.log"]
    assert [f.name for f in retention.logs_to_delete(files, NOW, 14)] == [
        "runner.20261101T033000.log"
    ]
    assert retention.rolled_name("runner.log", NOW) == "runner.20261204T033000.log"


# ---------------------------------------------------------------------------- the result
def test_freed_lines_and_the_summary_reconcile() -> None:
    steps = [Freed("vacuum", files=3, bytes=12_345, selected=3, removed=3),
             Freed("rejects", bytes=900, documents=4, selected=4, removed=4),
             Freed("logs", files=1, bytes=10, selected=2, removed=1)]  # fmt: skip
    assert steps[0].line() == "vacuum        freed 3 files, 12.3 KB"
    assert steps[1].line() == "rejects       freed 4 documents, 0 files, 900 B"
    assert steps[2].line().endswith("[1 could not be removed]")
    result = retention.summary(steps)
    assert (result["rows_in"], result["accepted"], result["rejected"]) == (9, 8, 1)
    freed = (result["freed_files"], result["freed_bytes"], result["freed_documents"])
    assert freed == (4, 13_255, 4)
    assert result["steps"]["vacuum"] == {"files": 3, "bytes": 12_345, "documents": 0,
                                         "selected": 3, "removed": 3}  # fmt: skip


# ---------------------------------------------------------------------------- hot buckets
def test_hot_buckets_go_past_the_days_of_the_replay_clock_once_the_lake_knows_as_much() -> None:
    clock = datetime(2013, 1, 20, 12, 30, tzinfo=UTC)  # the replay clock, not the wall clock

    def bucket(name: str, hours_before: float, version: int, lake: int | None):
        return retention.HotBucket(name, clock - timedelta(hours=hours_before), version, lake)

    buckets = [
        bucket("old_lake_equal", 73, 40, 40),  # the page shows the lake's: goes
        bucket("old_lake_more", 100, 40, 41),  # goes
        bucket("old_lake_behind", 80, 40, 39),  # the page shows the hot one: stays
        bucket("old_no_lake", 90, 12, None),  # the lake path never wrote it: stays
        bucket("at_cutoff", 72, 40, 40),  # exactly 3 days: stays (strictly older goes)
        bucket("recent", 2, 40, 40),  # stays
    ]
    assert retention.hot_to_delete(buckets, clock, 3) == ["old_lake_equal", "old_lake_more"]
    assert retention.hot_to_delete(buckets, clock, 5) == []
    naive = retention.HotBucket("naive", datetime(2013, 1, 1), 1, 1)  # pymongo without tz
    assert retention.hot_to_delete([naive], clock, 3) == ["naive"]


# ---------------------------------------------------------------------------- parameters
def test_defaults() -> None:
    p = SPEC.validate({"env": "ci"})
    assert (p.vacuum_retention_hours, p.run_records_days, p.logs_days, p.ledger_days,
            p.ledger_keep_per_job, p.rejects_days,
            p.hot_days, p.clock_speed) == (168, 14, 14, 30, 20, 30, 3, 1.0)  # fmt: skip
    assert p.optimize_tables == "raw/flight_events,raw/rejects,raw/weather"
    assert SPEC.validate({"env": "ci", "optimize_tables": ""}).optimize_tables == ""


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("vacuum_retention_hours", "24", "retentionDurationCheck refuses it"),
        ("vacuum_retention_hours", "167", "older snapshot"),
        ("ledger_days", "7", "operators read the last 8 days of runs"),
        ("ledger_keep_per_job", "5", "shows the newest 20"),
        ("optimize_tables", "raw/nope", "unknown lake tables"),
        ("rejects_days", "0", "greater than or equal to 1"),
        ("hot_days", "0", "hot_days below 1 is refused: the live board raises"),
        ("run_records_days", "x", "valid integer"),
        ("clock_speed", "0.5", "greater than or equal to 1"),
    ],
)
def test_refusals_say_why(name: str, value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        SPEC.validate({"env": "ci", name: value})


# ---------------------------------------------------------------------------- the clock
def test_production_clock_keeps_every_retention_in_wall_time() -> None:
    clock = retention.Clock()
    assert (clock.days(14), clock.vacuum_hours(168), clock.says(14)) == (14, 168, "14 days")


def test_an_accelerated_clock_shortens_each_retention_on_the_wall_down_to_vacuums_floor() -> None:
    clock = retention.Clock(720)
    assert clock.days(14) == pytest.approx(14 / 720)  # 28 wall minutes
    assert clock.says(14) == "14 days (28 min of wall time at 720x)"
    assert clock.vacuum_hours(168) == retention.VACUUM_WALL_MIN_HOURS  # 14 min: the 15 min floor
    assert retention.Clock(360).vacuum_hours(168) == pytest.approx(168 / 360)  # 28 min
    # what a record 20 wall minutes old and one 40 minutes old become at 720x: 14 replayed
    # days are 28 wall minutes
    records = [record("smoke", 20 / 1440, "000001"), record("smoke", 40 / 1440, "000002")]
    doomed = retention.run_records_to_delete(records, {}, [], NOW, clock.days(14))
    assert [r.run_id for r in doomed] == [records[1].run_id]
    assert retention.span(45) == "45 s" and retention.span(3 * 3600) == "3 h"


def test_the_lake_tables_and_the_limits_match_their_owners() -> None:
    from pipelines.lake.tables import TABLES

    assert tuple(t.name for t in TABLES) == params.LAKE_TABLES
    runs = build_parser().parse_args(["runs"])
    assert runs.limit == retention.RUNS_CLI_LIMIT
