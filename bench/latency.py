"""Real-time latency: from an event's ``produced_at`` to its effect being readable in MongoDB,
with ``flights_stream`` running as a long-lived job on a processing-time trigger.

    python bench/latency.py [--env ci] [--events 2000] [--rate 20] [--trigger 2s]

The stream runs as a subprocess (``python -m pipelines job flights_stream --trigger 2s``) on
its own topics, lake, checkpoints and database, all dropped afterwards. A Kafka consumer learns
every produced event (``produced_at``, the producer's record timestamp); a poll loop reads the
``flights_by_hour`` bucket of each pending event by ``_id`` every ``--poll`` seconds and records
when the event's flight first shows ``last_event_time >= event_time``. Latency is that wall
time minus ``produced_at`` (same machine, same clock). ``produced_at`` is stamped to the second
(floored), so this figure is conservative by up to 1 s; ``latency_from_send_s`` measures from
the record's millisecond Kafka timestamp instead. The poll cycle is the measurement resolution.

A warm-up of ``--warmup`` events goes first and is awaited (the first micro-batch carries the
Spark and Delta start-up); it is excluded from the figures and reported apart. Then at least
``--events`` events of a busy stretch of 2013 are replayed at ``--rate`` events/s. Events never
seen within ``--drain-timeout`` are reported as missing (and fail the run).

Needs the stack of ``--env`` up (``make stack-up``). Writes ``outputs/bench/latency.json`` and
the stream's log next to it. Target: p95 <= 10 s with a ``2s`` trigger.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.serving.readmodels import BOARD, hour_key
from pipelines.sources import replay
from pipelines.stack import kafka_io, mongo

TARGET_P95_S = 10.0
TARGET_TRIGGER = "2s"
PROJECTION = {"flights.flight_key": 1, "flights.last_event_time": 1, "flights.status_rank": 1}


def _utc(text: str) -> datetime:
    """An ISO-8601 'Z' time of an event as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (numpy's default method)."""
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "min": None, "mean": None}
    return {
        "n": len(values),
        "p50": round(_quantile(values, 0.50), 3),
        "p95": round(_quantile(values, 0.95), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


# ------------------------------------------------------------------------------- tracking


@dataclass
class Tracked:
    """One produced event, as the consumer saw it, and when its effect was first read."""

    event_id: str
    event_type: str
    phase: str  # "warmup" or "measured"
    bucket: str  # the flights_by_hour _id
    flight_key: str
    event_time: datetime
    produced_at: float  # epoch seconds, floored to the second by the producer
    sent_at: float  # the record's Kafka CreateTime (epoch seconds, ms precision)
    consumed_at: float
    seen_at: float | None = None

    def latency(self) -> float:
        assert self.seen_at is not None
        return self.seen_at - self.produced_at

    def latency_from_send(self) -> float:
        assert self.seen_at is not None
        return self.seen_at - self.sent_at


@dataclass
class Tracker:
    """Every event consumed (thread: :meth:`consume`) and its first sighting in MongoDB
    (thread: :meth:`poll`)."""

    settings: Settings
    measured_from: datetime  # events at or after this event_time are measured
    poll_s: float
    events: dict[str, Tracked] = field(default_factory=dict)
    pending: dict[str, list[Tracked]] = field(default_factory=lambda: defaultdict(list))
    cycles: list[float] = field(default_factory=list)  # wall seconds between poll starts
    reads: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def count(self, phase: str) -> tuple[int, int]:
        """(consumed, seen) events of ``phase``."""
        with self.lock:
            mine = [e for e in self.events.values() if e.phase == phase]
        return len(mine), sum(e.seen_at is not None for e in mine)

    def consume(self, consumer: KafkaConsumer) -> None:
        try:
            while not self.stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                now = time.time()
                for records in batches.values():
                    for rec in records:
                        self._add(orjson.loads(rec.value), rec.timestamp / 1000, now)
        except Exception as exc:  # reported in the result, never swallowed
            self.errors.append(f"consumer: {exc!r}")
            raise
        finally:
            consumer.close()

    def _add(self, msg: dict[str, Any], sent_at: float, now: float) -> None:
        event_time = _utc(msg["event_time"])
        hour = _utc(msg["sched_dep_utc"]).replace(minute=0, second=0, microsecond=0)
        ev = Tracked(
            event_id=msg["event_id"],
            event_type=msg["event_type"],
            phase="measured" if event_time >= self.measured_from else "warmup",
            bucket=hour_key(msg["origin"], hour),
            flight_key=msg["flight_key"],
            event_time=event_time,
            produced_at=_utc(msg["produced_at"]).timestamp(),
            sent_at=sent_at,
            consumed_at=now,
        )
        with self.lock:
            if ev.event_id in self.events:
                self.duplicates += 1
                return
            self.events[ev.event_id] = ev
            self.pending[ev.bucket].append(ev)

    def poll(self) -> None:
        """Every ``poll_s``: read the bucket of every pending event by ``_id`` and mark the
        events whose flight shows ``last_event_time >= event_time``."""
        board = mongo.database(self.settings)[BOARD]
        last = None
        try:
            while not self.stop.is_set():
                start = time.monotonic()
                if last is not None:
                    self.cycles.append(start - last)
                last = start
                with self.lock:
                    buckets = list(self.pending)
                for bucket in buckets:
                    doc = board.find_one({"_id": bucket}, PROJECTION)
                    seen_at = time.time()
                    self.reads += 1
                    if doc is None:
                        continue
                    newest = {
                        f["flight_key"]: f.get("last_event_time") for f in doc.get("flights", [])
                    }
                    with self.lock:
                        waiting = self.pending.get(bucket, [])
                        for ev in waiting:
                            t = newest.get(ev.flight_key)
                            if t is not None and t.astimezone(UTC) >= ev.event_time:
                                ev.seen_at = seen_at
                        left = [ev for ev in waiting if ev.seen_at is None]
                        if left:
                            self.pending[bucket] = left
                        else:
                            self.pending.pop(bucket, None)
                self.stop.wait(max(0.0, self.poll_s - (time.monotonic() - start)))
        except Exception as exc:
            self.errors.append(f"poller: {exc!r}")
            raise


def _consumer(settings: Settings) -> KafkaConsumer:
    """A group-less consumer of every partition of the flights topic, from the beginning."""
    topic = settings.kafka.topic("flights").name
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="tarmac-bench-latency",
    )
    deadline = time.monotonic() + 30
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            consumer.close()
            raise RuntimeError(f"topic {topic} has no partitions after 30 s")
        time.sleep(0.2)
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    consumer.seek_to_beginning()
    return consumer


# --------------------------------------------------------------------------------- stream


def _start_stream(
    settings: Settings, folder: Path, trigger: str, log_file: IO[bytes]
) -> subprocess.Popen:
    params = folder / "parameters"
    settings.write(params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params), "TARMAC_LOG_FORMAT": "json",
           "TARMAC_LOG_LEVEL": "INFO", "TARMAC_VERBOSE": "1"}  # fmt: skip
    env.pop("MONGO_DATABASE", None)  # would replace the bench database in the child
    cmd = [sys.executable, "-m", "pipelines", "job", "flights_stream", "--env", settings.env,
           "-p", f"trigger={trigger}"]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _stop_stream(proc: subprocess.Popen) -> int | None:
    """SIGTERM to the stream's process group, SIGKILL after 20 s; its exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    return proc.poll()


def _batch_lines(log_path: Path) -> list[dict[str, Any]]:
    """The ``flights_stream.batch`` lines of the stream's (JSON) log, in order."""
    rows = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"flights_stream.batch"' not in line or not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "flights_stream.batch":
            rec["_at"] = datetime.fromisoformat(rec["timestamp"]).timestamp()
            rows.append(rec)
    return rows


def _batches(log_path: Path, warmup_rows: int) -> dict[str, Any]:
    """Count, timings and rows of the logged batches; those past the first ``warmup_rows``
    Kafka records (the warm-up) are the ones that carried measured events."""
    rows = _batch_lines(log_path)
    measured, before = [], 0
    for r in rows:
        before += r["rows_in"]
        if before > warmup_rows:
            measured.append(r)
    ends = [r["_at"] for r in measured]
    steps: dict[str, list[float]] = defaultdict(list)
    for r in measured:
        for k, v in r.get("seconds", {}).items():
            steps[k].append(v)
    return {
        "batches": len(rows),
        "rows_in_logged": before,
        "first_batch": {k: rows[0][k] for k in ("rows_in", "seconds")} if rows else None,
        "batches_with_measured_events": len(measured),
        "measured_batches": {
            "batch_seconds_total": _summary(steps.get("total", [])),
            "batch_seconds_median_by_step": {
                k: round(statistics.median(v), 2) for k, v in steps.items()
            },
            "rows_in_per_batch": _summary([float(r["rows_in"]) for r in measured]),
            "seconds_between_batch_ends": _summary([b - a for a, b in pairwise(ends)]),
        },
    }


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------------------ bench run


def _window(settings: Settings, start: datetime, warmup: int, events: int) -> list[datetime]:
    """[start, measured_from, end): about ``warmup`` events, then at least ``events``."""
    lead = timedelta(minutes=settings.replay.board_lead_minutes)
    times = replay.flight_events(start, start + timedelta(days=7), lead)["event_time"]
    if len(times) < warmup + events:
        raise SystemExit(f"only {len(times)} events in the week from {start}")
    measured_from = times.iloc[warmup].to_pydatetime()
    first = int((times < measured_from).sum())
    end = times.iloc[first + events - 1].to_pydatetime() + timedelta(seconds=1)
    return [start, measured_from, end]


def _wait(tracker: Tracker, phase: str, expected: int, timeout: float,
          proc: subprocess.Popen, log_path: Path) -> float:  # fmt: skip
    """Wait until every ``expected`` event of ``phase`` is seen; seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        consumed, seen = tracker.count(phase)
        if consumed >= expected and seen >= expected:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"the stream exited ({proc.returncode}):\n{_tail(log_path)}")
        if tracker.errors:
            raise RuntimeError("; ".join(tracker.errors))
        time.sleep(0.2)
    return time.monotonic() - t0


def _settle(log_path: Path, rows: int, timeout: float, proc: subprocess.Popen) -> float:
    """Wait until the logged batches hold ``rows`` Kafka records; seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if sum(r["rows_in"] for r in _batch_lines(log_path)) >= rows:
            break
        time.sleep(0.5)
    return time.monotonic() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_t0 = time.monotonic()
    load_at_start = os.getloadavg()[0]
    base = config.load(args.env)
    tag = f"lat{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="tarmac-bench-latency-"))
    settings = base.isolated(tag, tmp, database=f"bench_{tag}")
    start, measured_from, end = _window(settings, args.start, args.warmup, args.events)
    tracker = Tracker(settings, measured_from, args.poll)
    log_path = args.out.with_name(args.out.stem + "-stream.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen | None = None
    threads: list[threading.Thread] = []
    try:
        kafka_io.ensure_topics(settings, ["flights", "flights_dlq"])
        with log_path.open("wb") as log_file:
            proc = _start_stream(settings, tmp, args.trigger, log_file)
        stream_t0 = time.time()
        threads = [
            threading.Thread(target=tracker.consume, args=(_consumer(settings),), daemon=True),
            threading.Thread(target=tracker.poll, daemon=True),
        ]
        for t in threads:
            t.start()

        def feed(lo: datetime, hi: datetime) -> replay.ReplayStats:
            r = replay.make(settings, "flights", progress=False, start=lo, end=hi,
                            catch_up=True, max_rate=args.rate)  # fmt: skip
            return r.run(from_scratch=True)

        warm = feed(start, measured_from)
        print(f"warm-up: {warm.sent['flights']} events sent; waiting for them ...", flush=True)
        warm_wait = _wait(tracker, "warmup", warm.sent["flights"], args.warmup_timeout, proc,
                          log_path)  # fmt: skip
        _, seen = tracker.count("warmup")
        if seen < warm.sent["flights"]:
            raise RuntimeError(
                f"warm-up: {seen}/{warm.sent['flights']} events visible after "
                f"{args.warmup_timeout:.0f} s:\n{_tail(log_path)}"
            )
        warm_visible = time.time() - stream_t0
        # and let the warm-up batch finish (its lake and KPI steps create the Delta tables)
        warm_logged = _settle(log_path, warm.sent["flights"], args.warmup_timeout, proc)
        print(f"warm-up visible after {warm_visible:.1f} s, its batch done after "
              f"{time.time() - stream_t0:.1f} s; measuring ...", flush=True)  # fmt: skip
        measured_t0 = time.time()
        meas = feed(measured_from, end)
        print(f"measured: {meas.sent['flights']} events sent in {meas.seconds:.1f} s; "
              "waiting for the last ones ...", flush=True)  # fmt: skip
        drain = _wait(tracker, "measured", meas.sent["flights"], args.drain_timeout, proc,
                      log_path)  # fmt: skip
        tracker.stop.set()
        for t in threads:
            t.join(timeout=10)
        # the board is written first in a batch: let the batch that carried the last events
        # finish (lake, KPIs) and log its timings before the stream is stopped
        total = warm.sent["flights"] + meas.sent["flights"]
        settle = _settle(log_path, total, args.drain_timeout, proc)
    finally:
        tracker.stop.set()
        exit_code = _stop_stream(proc) if proc is not None else None
        mongo.database(settings).client.drop_database(settings.mongo.database)
        kafka_io.delete_topics(base, [t.name for t in settings.kafka.topics.values()])
        shutil.rmtree(tmp, ignore_errors=True)

    with tracker.lock:
        everything = list(tracker.events.values())
    warm_ev = [e for e in everything if e.phase == "warmup"]
    measured = [e for e in everything if e.phase == "measured"]
    seen = [e for e in measured if e.seen_at is not None]
    missing = [e for e in measured if e.seen_at is None]
    unconsumed = meas.sent["flights"] - len(measured)
    latency = _summary([e.latency() for e in seen])
    complete = not missing and unconsumed <= 0 and not tracker.errors
    checks = {
        "p95_within_target": latency["p95"] is not None and latency["p95"] <= TARGET_P95_S,
        "trigger_as_targeted": args.trigger == TARGET_TRIGGER,
        "every_event_seen": complete,
        "enough_events": len(seen) >= args.events,
    }
    by_type: dict[str, list[float]] = defaultdict(list)
    for e in seen:
        by_type[e.event_type].append(e.latency())
    return {
        "benchmark": "latency",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_start": round(load_at_start, 2),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "env": args.env,
        "trigger": args.trigger,
        "rate_events_per_s": args.rate,
        "window": {
            "warmup": [start.isoformat(), measured_from.isoformat()],
            "measured": [measured_from.isoformat(), end.isoformat()],
        },
        "definition": "wall time the flight's flights_by_hour subdocument first shows "
        "last_event_time >= event_time (read by _id), minus the event's produced_at",
        "events": {
            "measured_sent": meas.sent["flights"],
            "measured_consumed": len(measured),
            "measured_seen": len(seen),
            "missing": len(missing),
            "missing_sample": [
                {
                    "event_id": e.event_id,
                    "event_type": e.event_type,
                    "bucket": e.bucket,
                    "flight_key": e.flight_key,
                    "event_time": e.event_time.isoformat(),
                }
                for e in missing[:20]
            ],
            "sent_but_not_consumed": unconsumed,
            "dead_lettered": warm.dead_lettered + meas.dead_lettered,
            "duplicates_consumed": tracker.duplicates,
        },
        "latency_s": latency,
        "latency_s_by_event_type": {k: _summary(v) for k, v in sorted(by_type.items())},
        "latency_from_send_s": _summary([e.latency_from_send() for e in seen]),
        "kafka_delivery_s": _summary([e.consumed_at - e.sent_at for e in measured]),
        "resolution": {
            "produced_at_s": 1.0,
            "poll_interval_s": args.poll,
            "poll_cycle_s": _summary(tracker.cycles),
            "bucket_reads": tracker.reads,
        },
        "warmup": {
            "events": len(warm_ev),
            "max_latency_s": round(max(e.latency() for e in warm_ev), 3) if warm_ev else None,
            "seconds_waited_after_sending": round(warm_wait, 1),
            "visible_after_stream_start_s": round(warm_visible, 1),
            "seconds_waited_for_its_batch_to_finish": round(warm_logged, 1),
        },
        "send": {
            "measured_seconds": round(meas.seconds, 1),
            "measured_events_per_s": round(meas.rate, 1),
            "measured_started_at": _iso(measured_t0),
        },
        "drain_seconds_after_last_send": round(drain, 1),
        "seconds_waited_for_the_last_batch_to_log": round(settle, 1),
        "stream": {
            **_batches(log_path, warm.sent["flights"]),
            "log": str(log_path),
            "exit_code_after_sigterm": exit_code,
        },
        "errors": tracker.errors,
        "targets": {"p95_s": TARGET_P95_S, "trigger": TARGET_TRIGGER},
        "checks": checks,
        "pass": all(checks.values()),
        "bench_seconds": round(time.monotonic() - bench_t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env", default="ci", help="parameters/<env>.yaml (default ci)")
    parser.add_argument("--trigger", default=TARGET_TRIGGER, help="the stream's trigger")
    parser.add_argument("--events", type=int, default=2000, help="measured events, at least")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up events (excluded)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per wall second")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between bucket reads")
    parser.add_argument(
        "--start",
        type=_utc,
        default=datetime(2013, 1, 2, 11, tzinfo=UTC),
        help="event time the warm-up starts at (ISO UTC, default 2013-01-02T11:00:00Z)",
    )
    parser.add_argument("--warmup-timeout", type=float, default=300.0,
                        help="seconds to wait for the warm-up events to show")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="seconds to wait for the last measured events to show")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "latency.json"
    )
    args = parser.parse_args()
    logs.configure("WARNING")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
