"""Reconciliation that can fail, on the real path (``core/reconcile.py``): counts of one input
from two independent sources, a real mismatch fed through the real job, the run failing with
``ReconcileError`` (exit code 12) naming the file or the Kafka partition, and a rerun without
the fault converging.

- a weather file rewritten in place between its check and Spark's read (a writer that does not
  land files atomically; the job paused at ``landing.before_read``): the check counted 2 rows,
  Spark read 3; the file stays in ``landing/`` unclaimed, the run's other file is processed, and
  the rerun processes the new content once;
- a weather file whose bytes the two parsers split differently (a quoted value spanning two
  lines: one record to Python's csv, two lines to Spark): quarantined with both counts;
- a stream micro-batch losing rows between Kafka and the count (``stream.before_count:drop``):
  nothing of it is written, its offsets are not committed, and the rerun reads every event once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from pyspark.sql import functions as F

from pipelines.clients import mongo
from pipelines.clients.spark import build_session
from pipelines.core.config import Settings
from pipelines.core.exceptions import ReconcileError
from pipelines.core.files import write_atomic
from pipelines.jobs import flights_stream, weather_hourly
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.landing import ingest
from pipelines.sources import replay
from tests.conftest import write_parameters
from tests.integration.test_validation import HOUR, hour_rows

START = datetime(2013, 3, 4, 10, tzinfo=UTC)
END = datetime(2013, 3, 4, 12, tzinfo=UTC)  # 2 h of flight events: a few hundred


@pytest.fixture
def own(iso: Settings, tmp_path: Path):
    """``iso`` with a database of its own, dropped at the end."""
    settings = iso.model_copy(update={"mongo": iso.mongo.model_copy(
        update={"database": f"{iso.mongo.database}_rec_{tmp_path.name[-8:]}"})})  # fmt: skip
    yield settings
    db = mongo.database(settings)
    db.client.drop_database(db.name)


def _spawn(settings: Settings, tmp: Path, fault: str, *args: str) -> subprocess.Popen:
    """``python -m pipelines job <args>`` in its own session, with ``TARMAC_FAULT``."""
    write_parameters(settings, tmp / "parameters")
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(tmp / "parameters"),
           "TARMAC_FAULT": fault, "TARMAC_FAULT_DIR": str(tmp)}  # fmt: skip
    cmd = [sys.executable, "-m", "pipelines", "job", *args, "--env", settings.env]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


def test_a_file_rewritten_between_check_and_read_fails_the_run_and_is_retried(
    own: Settings, tmp_path: Path
) -> None:
    settings = own
    landing = ingest.zone(settings).root / "landing" / "weather"
    first, second = hour_rows(), hour_rows(HOUR.replace(hour=16))
    write_atomic(landing / "weather_20130304T15Z.csv", first.to_csv(index=False))
    changing = landing / "weather_20130304T16Z.csv"
    write_atomic(changing, second.iloc[:2].to_csv(index=False))  # 2 of its 3 rows
    proc = _spawn(settings, tmp_path, "landing.before_read:pause", "weather_hourly")
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "landing.before_read.reached").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        with changing.open("w") as fh:  # in place, as a writer that does not land atomically
            fh.write(second.to_csv(index=False))
        (tmp_path / "landing.before_read.release").touch()
    finally:
        rc, out = _finish(proc)
    assert rc == ReconcileError.exit_code == 12, out[-3000:]
    assert (
        "weather: 1 landed file(s) do not reconcile (weather_20130304T16Z.csv: the file check "
        "counted 2 rows, Spark read 3 -- changed while it was read: left in landing/weather/ "
        "for the next run)"
    ) in out
    lz = ingest.zone(settings)
    assert [r["status"] for r in lz.manifest.records("weather")] == [
        "processed"
    ]  # 15Z; 16Z unclaimed
    assert [f.name for f in lz.pending("weather")] == ["weather_20130304T16Z.csv"]
    db = mongo.database(settings)
    assert db.weather_hourly.count_documents({}) == len(first)

    again = weather_hourly.run(settings)  # no fault: the new content, checked and read
    assert (again["files"], again["rows_in"], again["unreconciled"]) == (1, len(second), 0)
    assert db.weather_hourly.count_documents({}) == len(first) + len(second)
    spark = build_session(settings, "tests")
    raw = Lake.of(spark, settings).read(tables.RAW_WEATHER)
    assert raw.groupBy("source_file").count().orderBy("source_file").collect() == [
        ("weather_20130304T15Z.csv", len(first)), ("weather_20130304T16Z.csv", len(second)),
    ]  # fmt: skip
    assert lz.reconcile("weather")["processed"] == 2


def test_bytes_the_two_parsers_split_differently_are_quarantined_with_both_counts(
    own: Settings,
) -> None:
    settings = own
    landing = ingest.zone(settings).root / "landing" / "weather"
    good, split = hour_rows(), hour_rows(HOUR.replace(hour=16)).astype(str)
    split.loc[0, "wind_dir"] = "2\n70"  # quoted by to_csv: one record to csv, two lines to Spark
    write_atomic(landing / "weather_20130304T15Z.csv", good.to_csv(index=False))
    write_atomic(landing / "weather_20130304T16Z.csv", split.to_csv(index=False))
    with pytest.raises(ReconcileError) as err:
        weather_hourly.run(settings)
    n = len(split)
    assert str(err.value).startswith(
        f"weather: 1 landed file(s) do not reconcile (weather_20130304T16Z.csv: the file check "
        f"counted {n} rows, Spark read {n + 1} -- quarantined as quarantine/weather/"
        "weather_20130304T16Z.csv)"
    )
    lz = ingest.zone(settings)
    reason = json.loads((lz.root / "quarantine/weather/weather_20130304T16Z.csv.reason.json")
                        .read_text())  # fmt: skip
    assert (reason["code"], reason["rows_in"]) == ("unreconciled", n)
    assert reason["reason"].startswith(f"unreconciled: the file check counted {n} rows, Spark")
    db = mongo.database(settings)
    assert db.weather_hourly.count_documents({}) == len(good)  # the other file went through
    assert db.rejects.count_documents({"kind": "file", "reason": reason["reason"]}) == 1
    assert lz.pending("weather") == []  # nothing left to retry: a rerun would fail the same way


def _end_offsets(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_a_batch_losing_rows_before_the_count_fails_naming_the_partition(
    own: Settings, tmp_path: Path
) -> None:
    settings = own
    replay.make(settings, "flights", progress=False, start=START, end=END, catch_up=True).run()
    topic = settings.kafka.topic("flights").name
    produced = _end_offsets(settings, topic)
    assert 100 < produced < 1000
    proc = _spawn(settings, tmp_path, "stream.before_count:drop", "flights_stream",
                  "-p", "max_offsets_per_trigger=100")  # fmt: skip
    rc, out = _finish(proc)
    assert rc == ReconcileError.exit_code, out[-3000:]
    assert f"micro-batch 0 does not reconcile with its Kafka offsets: {topic} partition 0: " in out
    assert "rows lost between Kafka and the count; the topic is neither compacted nor" in out
    spark = build_session(settings, "tests")
    assert not Lake.of(spark, settings).exists(tables.FLIGHT_EVENTS)  # nothing written

    result = flights_stream.run(settings)  # no fault: batch 0 again as planned, then the rest
    assert (result.rows_in, result.accepted + result.rejected) == (produced, produced)
    events = Lake.of(spark, settings).read(tables.FLIGHT_EVENTS)
    counts = events.agg(F.count("*"), F.countDistinct("event_id")).first()
    assert tuple(counts) == (produced - result.rejected, produced - result.rejected)
