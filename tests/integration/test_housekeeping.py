"""The housekeeping job through the real runner (papermill, ledger, lock) on the real stack: a
Delta table with overwritten files, old run records and logs, a ledger, old and new rejects;
exactly what goes, what stays, and that what each step reports is what disappeared. And the
Kafka topics it leaves to creation time: created with their retention, read back from the
broker's admin API."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson
import nbformat
import pytest
from pyspark.sql import functions as F

from pipelines.clients import kafka_io, mongo
from pipelines.core import config
from pipelines.core.config import DAY_MS, Settings
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.orchestration import runner
from tests import delta_age

pytestmark = pytest.mark.integration

TABLE = tables.KPI_ROUTE_MONTHLY  # partitioned by month
AGE = timedelta(days=10)  # older than the 7 days VACUUM keeps


@pytest.fixture
def hk(iso: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str):
    """Isolated settings (own topics, lake, database), outputs/ under tmp_path, for kernels too."""
    topics = dict(iso.kafka.topics)
    topics["flights"] = topics["flights"].model_copy(
        update={"retention_ms": 7 * DAY_MS, "retention_bytes": 3 * 1024**3}
    )
    iso = iso.model_copy(update={
        "kafka": iso.kafka.model_copy(update={"topics": topics}),
        "mongo": iso.mongo.model_copy(update={"database": f"{iso.mongo.database}_hk_{unique}"}),
    })  # fmt: skip
    iso.write(tmp_path / "parameters")
    monkeypatch.setenv("TARMAC_PARAMETERS_DIR", str(tmp_path / "parameters"))
    monkeypatch.setenv("TARMAC_OUTPUTS_DIR", str(tmp_path / "outputs"))
    yield iso
    mongo.database(iso).client.drop_database(iso.mongo.database)
    kafka_io.delete_topics(iso, [t.name for t in iso.kafka.topics.values()])


def _age_table(root: Path, now: datetime) -> dict[str, int]:
    """Make the table's history 10 days old, as 10 days of waiting would (``tests/delta_age``).
    Returns the removed files' sizes."""
    return delta_age.age_table(root, now - AGE)


def _run_files(outputs: Path, job: str, start: datetime, run_id: str) -> list[Path]:
    folder = outputs / "runs" / job / f"{start:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for suffix, size in ((".ipynb", 3000), (".html", 5000), (".log", 700), (".metrics.json", 90)):
        path = folder / f"{run_id}{suffix}"
        path.write_bytes(b"x" * size)
        files.append(path)
    return files


def test_housekeeping_frees_exactly_what_its_policy_says(spark, stack, hk: Settings) -> None:
    now = datetime.now(UTC)
    outputs = Path(os.environ["TARMAC_OUTPUTS_DIR"])
    db = mongo.database(hk)

    # -- the lake: two months, one of them overwritten twice (replaceWhere), 2 files a month
    def month(name: str, n: int):
        return (spark.range(n).repartition(2)
                .select(F.lit("EWR").alias("origin"), F.col("id").cast("string").alias("dest"),
                        F.lit(name).alias("month"), F.col("id").alias("flights")))  # fmt: skip

    lake = Lake.of(spark, hk)
    lake.overwrite(month("2013-01", 10).unionByName(month("2013-02", 10)), TABLE)
    lake.overwrite(month("2013-01", 12), TABLE, ["2013-01"])
    lake.overwrite(month("2013-01", 14), TABLE, ["2013-01"])
    root = Path(lake.uri(TABLE))
    removed = _age_table(root, now)
    assert len(removed) == 4  # 2013-01's two files of v0, then of v1
    # a table created before the log's settings: Delta's own defaults
    spark.sql(f"ALTER TABLE delta.`{root}` SET TBLPROPERTIES "
              "('delta.logRetentionDuration' = 'interval 30 days', "
              "'delta.checkpointInterval' = '10')")  # fmt: skip
    live_before = {str(p) for p in root.rglob("*.parquet")} - set(removed)

    # -- run records: weather_hourly's newest failure (18 days) stays, older ones go
    def stamp(days: float, suffix: str) -> tuple[datetime, str]:
        start = (now - timedelta(days=days)).replace(microsecond=0)
        return start, f"{start:%Y%m%dT%H%M%S}-{suffix}"

    runs = {
        "w_success_20d": ("weather_hourly", *stamp(20, "aaaaa1"), "success"),
        "w_failure_18d": ("weather_hourly", *stamp(18, "aaaaa2"), "failed"),
        "w_failure_25d": ("weather_hourly", *stamp(25, "aaaaa3"), "timeout"),
        "w_recent_1d": ("weather_hourly", *stamp(1, "aaaaa4"), "success"),
        "r_unknown_30d": ("reference_daily", *stamp(30, "aaaaa5"), None),  # no ledger doc
    }
    files = {
        key: _run_files(outputs, job, start, rid) for key, (job, start, rid, _) in runs.items()
    }
    ledger = [
        {"_id": rid, "run_id": rid, "job": job, "env": hk.env, "status": status, "start": start,
         "params": {"env": hk.env}, "metrics": {}}
        for job, start, rid, status in runs.values() if status
    ]  # fmt: skip
    smoke = [stamp(40 + i, f"bbbb{i:02x}") for i in range(25)]  # newest 20 of a job stay
    ledger += [{"_id": rid, "run_id": rid, "job": "smoke", "env": hk.env, "status": "success",
                "start": start, "params": {"env": hk.env}, "metrics": {}}
               for start, rid in smoke]  # fmt: skip
    db.pipeline_runs.insert_many(ledger)
    doomed_ledger = {rid for _, rid in smoke[20:]}
    ledger_bytes = sum(len(bson.encode(d)) for d in ledger if d["_id"] in doomed_ledger)
    doomed_runs = ["w_success_20d", "w_failure_25d", "r_unknown_30d"]

    # -- logs: a big live log is rolled, a rolled one not written for 30 days goes
    logs = outputs / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "cron-weather_hourly.log").write_bytes(b"l" * (1024**2 + 1))
    stale = logs / "cron-weather_hourly.20261101T033000.log"
    stale.write_bytes(b"s" * 4321)
    os.utime(stale, ((now - timedelta(days=30)).timestamp(),) * 2)
    fresh = logs / "runner.20261201T033000.log"
    fresh.write_bytes(b"f" * 10)

    # -- rejects: 3 older than 30 days go, 2 newer stay
    rejects = [{"_id": f"old{i}", "source": "weather_hourly", "reason": "bad hour", "kind": "row",
                "where": f"f.csv:{i}", "excerpt": "x" * (10 * i),
                "at": now - timedelta(days=40 + i)} for i in range(3)]  # fmt: skip
    rejects += [{"_id": f"new{i}", "source": "flights_stream", "reason": "bad type", "kind": "row",
                 "where": f"t:0:{i}", "excerpt": "y", "at": now - timedelta(days=29 - i)}
                for i in range(2)]  # fmt: skip
    db.rejects.insert_many(rejects)
    rejects_bytes = sum(len(bson.encode(r)) for r in rejects[:3])

    # -- the job, through the runner (papermill, lock, ledger)
    result = runner.run("housekeeping", hk.env,
                        {"optimize_tables": TABLE.name, "vacuum_mode": "lite"})  # fmt: skip
    assert result.status == "success", result.last.get("error")
    # the runner records the run in its env's ledger (the kernel prunes the test's database)
    doc = mongo.database(stack).pipeline_runs.find_one_and_delete({"_id": result.run_id})
    steps = doc["metrics"]["steps"]

    # the lake: exactly the aged, unreferenced files are gone, and reported as such
    assert steps["vacuum"]["files"] == len(removed) and steps["vacuum"]["tables"] == 1
    assert steps["vacuum"]["bytes"] == sum(removed.values())
    assert not [p for p in removed if Path(p).exists()]
    assert all(Path(p).exists() for p in live_before)  # the files OPTIMIZE just replaced stay
    assert steps["optimize"]["compacted_files"] == 4 and steps["optimize"]["written_files"] == 2
    assert steps["optimize"]["bytes"] == 0  # freed by a VACUUM 7 days later
    data = spark.read.format("delta").load(str(root)).groupBy("month").count().collect()
    assert {r["month"]: r["count"] for r in data} == {"2013-01": 14, "2013-02": 10}

    # the log's settings given to the table that had Delta's defaults
    assert steps["delta_log"]["tables_changed"] == [TABLE.name]
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{root}`").first()["properties"]
    assert {k: detail[k] for k in hk.spark.delta_table_properties()} == {
        "delta.logRetentionDuration": "interval 10 days",
        "delta.checkpointInterval": "100",
    }

    # run records: the old ones gone but weather_hourly's newest failure and the recent one
    for key, paths in files.items():
        assert all(p.exists() != (key in doomed_runs) for p in paths), key
    assert steps["run_records"]["files"] == 4 * len(doomed_runs)
    assert steps["run_records"]["bytes"] == (3000 + 5000 + 700 + 90) * len(doomed_runs)
    assert runs["w_failure_18d"][2] in steps["run_records"]["kept_failures"]
    assert not (outputs / "runs" / "reference_daily").exists() or not any(
        (outputs / "runs" / "reference_daily").iterdir()
    )

    # logs: the big one rolled (a new one starts), the stale rolled one gone, the fresh kept
    assert not stale.exists() and fresh.exists()
    rolled = steps["logs"]["rolled"]
    assert "cron-weather_hourly.log" in rolled
    assert steps["logs"]["files"] == 1 and steps["logs"]["bytes"] == 4321
    assert [p.stat().st_size for p in logs.glob("cron-weather_hourly.2*.log") if p != stale] == [
        1024**2 + 1
    ]

    # the ledger: the 5 oldest smoke runs gone, everything else (and this run) kept
    left = {d["_id"] for d in db.pipeline_runs.find({}, {"_id": 1})}
    assert left == {d["_id"] for d in ledger} - doomed_ledger
    assert steps["ledger"]["documents"] == 5 and steps["ledger"]["bytes"] == ledger_bytes

    # rejects: older than 30 days deleted, the newer kept
    assert sorted(d["_id"] for d in db.rejects.find({}, {"_id": 1})) == ["new0", "new1"]
    assert steps["rejects"]["documents"] == 3 and steps["rejects"]["bytes"] == rejects_bytes

    # totals and the reconciliation: selected = removed, nothing refused
    total_files = sum(s["files"] for s in steps.values())
    assert doc["metrics"]["freed_files"] == total_files == len(removed) + 12 + 1
    assert doc["metrics"]["freed_documents"] == 8
    assert (
        doc["rows_rejected"] == 0
        and doc["rows_in"] == doc["rows_out"] == len(removed) + 3 + 1 + 5 + 3
    )
    # one line per step on the output notebook
    nb = nbformat.read(doc["notebook"], as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    heads = [line.split()[0] for line in text.splitlines() if "  freed " in line]
    assert heads == [
        "optimize",
        "delta_log",
        "vacuum",
        "run_records",
        "logs",
        "ledger",
        "rejects",
        "hot",
        "total",
    ]


def _replaced_once(spark, hk: Settings, month: str, n: int) -> tuple[Lake, Path]:
    """:data:`TABLE` with ``n`` rows in ``month``, written then overwritten: its first files
    removed by the second commit, for a VACUUM to find. The lake and the table's folder."""
    rows = spark.range(n).select(
        F.lit("EWR").alias("origin"),
        F.lit("X").alias("dest"),
        F.lit(month).alias("month"),
        F.col("id").alias("flights"),
    )
    lake = Lake.of(spark, hk)
    lake.overwrite(rows, TABLE)
    lake.overwrite(rows, TABLE, [month])
    return lake, Path(lake.uri(TABLE))


def test_a_lite_vacuum_leaves_a_file_no_commit_knows_and_a_full_one_takes_it(
    spark, hk: Settings
) -> None:
    """``LITE`` deletes the files the log removed; a file no commit knows (a job killed between
    writing a file and committing it) is deleted only by ``FULL``, the weekly one."""
    from pipelines.jobs.housekeeping import full_vacuum_today, vacuum

    now = datetime.now(UTC)
    lake, root = _replaced_once(spark, hk, "2013-01", 4)
    removed = _age_table(root, now)
    orphan = root / "month=2013-01" / "part-00000-killed-before-its-commit.c000.snappy.parquet"
    orphan.write_bytes(next(iter(root.rglob("*.parquet"))).read_bytes())
    os.utime(orphan, ((now - AGE).timestamp(),) * 2)

    lite = vacuum(lake, 168, full=False)
    assert (lite.files, lite.bytes) == (len(removed), sum(removed.values())) and removed
    assert lite.detail["mode"] == "lite" and orphan.exists()
    size = orphan.stat().st_size
    full = vacuum(lake, 168, full=True)
    assert (full.files, full.bytes, full.detail["mode"]) == (1, size, "full")
    assert not orphan.exists()
    assert spark.read.format("delta").load(str(root)).count() == 4  # the live data untouched
    sunday, monday = datetime(2026, 12, 6, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)
    assert [full_vacuum_today("weekly", d) for d in (sunday, monday)] == [True, False]
    assert not full_vacuum_today("lite", sunday) and full_vacuum_today("full", monday)


def test_an_accelerated_clock_vacuums_what_its_replayed_week_replaced(spark, hk: Settings) -> None:
    """At ``clock_speed`` 720 (a soak), VACUUM's 7 days are 15 wall minutes (its floor), kept
    through the table's ``delta.deletedFileRetentionDuration`` (Delta's ``RETAIN`` rounds a
    quarter hour to 0): a file replaced 10 minutes ago stays, one replaced 20 minutes ago goes,
    where the production clock keeps both a week; the live data stays whole."""
    from pipelines.jobs.housekeeping import delta_log, vacuum
    from pipelines.jobs.retention import Clock, file_retention

    now = datetime.now(UTC)
    lake, root = _replaced_once(spark, hk, "2013-02", 3)
    week = vacuum(lake, Clock().vacuum_hours(168))
    assert (week.files, week.detail["retention_hours"]) == (0, 168)
    hours = Clock(720).vacuum_hours(168)
    assert file_retention(hours) == {"delta.deletedFileRetentionDuration": "interval 15 minutes"}
    assert delta_log(lake, file_retention(hours)).detail["tables_changed"] == [TABLE.name]
    assert delta_log(lake, file_retention(hours)).detail["tables_changed"] == []  # once
    removed = delta_age.age_table(root, now - timedelta(minutes=10))
    assert removed
    early = vacuum(lake, hours, by_table=True)
    assert early.files == 0 and all(Path(p).exists() for p in removed)
    delta_age.age_table(root, now - timedelta(minutes=20))
    soak = vacuum(lake, hours, by_table=True)
    assert (soak.files, soak.bytes) == (len(removed), sum(removed.values()))
    assert soak.detail["retention_hours"] == 0.25 and "15 min kept" in soak.detail["note"]
    assert not any(Path(p).exists() for p in removed)
    assert spark.read.format("delta").load(str(root)).count() == 3


def test_topics_are_created_with_their_retention(hk: Settings) -> None:
    # the YAML the fixture wrote: the typed retention read back from a parameters file
    settings = config.load(hk.env, Path(os.environ["TARMAC_PARAMETERS_DIR"]) / f"{hk.env}.yaml")
    assert settings.kafka.topic("flights").retention_ms == 7 * DAY_MS
    created = kafka_io.ensure_topics(settings)
    assert sorted(created) == sorted(t.name for t in settings.kafka.topics.values())
    time.sleep(0.5)
    found = kafka_io.topic_configs(settings, created)
    for key, topic in settings.kafka.topics.items():
        assert found[topic.name] == topic.configs(), key
    assert found[settings.kafka.topic("flights").name] == {
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "retention.bytes": str(3 * 1024**3),
    }
    extra = f"{settings.kafka.topic('smoke').name}.extra"  # a topic made by name (tests, bench)
    try:
        assert kafka_io.create_topic(settings, extra, partitions=2)
        assert kafka_io.topic_configs(settings, [extra])[extra] == {
            "retention.ms": str(30 * DAY_MS), "retention.bytes": str(2 * 1024**3)}  # fmt: skip
    finally:
        kafka_io.delete_topics(settings, [extra])
    assert found[settings.kafka.topic("smoke").name] == {
        "retention.ms": str(30 * DAY_MS),
        "retention.bytes": str(2 * 1024**3),
    }  # the defaults
