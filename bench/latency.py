"""Real time, end to end: from an event's production to its board document, its hour's KPI
row, its day document and the page in Chromium, with ``flights_stream`` long-lived (hot path
+ lake path) and the weather job landing a day of files midway; and the stream's CPU.

    python bench/latency.py [--env ci] [--events 2000] [--rate 20] [--trigger 10s]

The stream runs as a subprocess (``python -m pipelines job flights_stream -p trigger=10s
-p board_trigger=500ms``) on its own topics, lake, checkpoints and database,
all dropped afterwards.
A Kafka consumer learns every produced event; poll threads read the documents of the pending
events by ``_id`` (``bench/latency_track.py``) and stamp, per event, the first read where

1. **board**: the resolved ``flights_by_hour`` bucket (``readmodels.resolve``) shows the flight
   with ``last_event_time >= event_time``;
2. **hour**: the resolved ``kpi_hourly`` row of the bucket has ``version >=`` the board's
   version of 1;
3. **day**: the lake path's own fields of the bucket include the event, then its lake
   ``kpi_hourly`` row reaches that version (``updated_at`` U), then ``kpi_daily[date]
   .updated_at >= U``;
4. **page**: Voila serves the bench's database, headless Chromium shows it, a MutationObserver
   on the live board notes when each flight's row appears or changes status
   (``bench/page_watch.py``); an event is visible when its flight shows its status or a later
   one. The board shows flights scheduled within an hour of the replay clock: the events it
   can show are counted, and how many of them were matched.
5. **day figures on the page**: of the events the page showed, the first change of the
   airports panel (drawn with the airlines and the weather, from the same read as the board:
   a live day's rows derived from its buckets, ``readmodels.day_doc``, at most every
   ``follow.DAY_DRAW_S``) at or after the board row showed it: an upper bound (a redraw that
   holds the event but changes none of the panel's figures is not seen). The day's target
   (30 s) is reported for it and for the lake path's document (3).

Latency is the wall time of that read minus the moment the event was produced: the record's
Kafka timestamp, which the producer sets to the millisecond when the replay sends it (same
machine, same clock). Until 2026-12-06 it was the message's ``produced_at``, which the replay
floors to the second: every figure was up to 1 s too high (0.5 s on average; they are still
reported, ``latency_from_produced_at_s``). Resolution: the poll cycle (``--poll`` for 1 and 2,
``--lake-poll`` for 3, reported) and, for the page, its own poll of the stream's state.

The stream's CPU: its whole process tree (driver, JVM, Python workers), sampled each second with
``psutil`` during the measured phase, average and p95 in cores, and its resident memory. The
micro-batch durations of each query come from the stream's log (``flights_board.batch``,
``flights_stream.batch``, ``flights_stream.refreshed``).

A warm-up of ``--warmup`` events goes first and is awaited through the day document (the
first batches carry the Spark and Delta start-up); it is excluded. Then at least
``--events`` events of a busy stretch of 2013 are replayed at ``--rate`` events/s; halfway, the
weather files of the day (``--weather-day``) are replayed into the landing zone and
``python -m pipelines job weather_hourly`` runs as a subprocess. Events that never reach their
board, hour or day document within ``--drain-timeout`` are reported as missing and fail the
run; page misses are reported.

Needs the stack of ``--env`` up (``make stack-up``) and ``/usr/bin/chromium`` (``--no-page``
skips the browser). Writes ``outputs/bench/latency.json``, the stream's log
(``latency-stream.log``), Voila's and the weather job's next to it. Targets (2 cores): board
p95 <= 2 s, hour KPI row p95 <= 5 s, page p95 <= 5 s, day document p95 <= 30 s, the stream
<= 1 core on average.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/latency.py`
from bench import latency_stream as S  # noqa: E402
from bench import page_watch  # noqa: E402
from bench.latency_report import print_summary, report  # noqa: E402
from bench.latency_track import STAGES, Tracker, consumer, utc  # noqa: E402
from pipelines.clients import kafka_io, mongo  # noqa: E402
from pipelines.core import config, logs  # noqa: E402
from pipelines.core.config import REPO_ROOT, Settings  # noqa: E402
from pipelines.jobs.registry import JOBS  # noqa: E402
from pipelines.sources import replay  # noqa: E402


def _window(settings: Settings, start: datetime, warmup: int, events: int) -> list[datetime]:
    """[start, measured_from, mid, end): about ``warmup`` events, then at least ``events``
    (``mid``: the event time halfway through them)."""
    lead = timedelta(minutes=settings.replay.board_lead_minutes)
    times = replay.flight_events(start, start + timedelta(days=7), lead)["event_time"]
    if len(times) < warmup + events:
        raise SystemExit(f"only {len(times)} events in the week from {start}")
    measured_from = times.iloc[warmup].to_pydatetime()
    first = int((times < measured_from).sum())
    mid = times.iloc[first + events // 2].to_pydatetime()
    end = times.iloc[first + events - 1].to_pydatetime() + timedelta(seconds=1)
    return [start, measured_from, mid, end]


class Run:
    """One bench run's moving parts, so that every exit stops them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.base = config.load(args.env)
        tag = f"lat{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="tarmac-bench-latency-"))
        self.settings = self.base.isolated(tag, self.tmp, database=f"bench_{tag}")
        self.params = self.tmp / "parameters"
        self.settings.write(self.params)
        self.start, self.measured_from, self.mid, self.end = _window(
            self.settings, args.start, args.warmup, args.events)  # fmt: skip
        self.tracker = Tracker(self.settings, self.measured_from, args.poll, args.lake_poll)
        # --hot-only: the lake path is not started, so no day document is awaited
        self.stages = STAGES[:2] if args.hot_only else STAGES
        out = args.out
        self.log = out.with_name(out.stem + "-stream.log")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.cpu: S.CpuSampler | None = None
        day = args.weather_day or self.mid.replace(hour=0, minute=0, second=0, microsecond=0)
        self.weather = S.WeatherDay(self.settings, self.params, day,
                                    out.with_name(out.stem + "-weather.log"))  # fmt: skip
        self.page = (
            None
            if args.no_page or args.hot_only  # the page draws once the lake path wrote KPIs
            else page_watch.PageWatch(
                args.env, self.settings.mongo.database, out.with_name(out.stem + "-voila.log")
            )
        )
        self.sent = {"warmup": 0, "measured": 0}
        self.got: dict[str, Any] = {"warm": None, "parts": [], "n_warm": 0, "n_meas": 0}
        self.error: str | None = None  # why the run stopped early, if it did
        self.starts: list[float] = []  # wall times the stream was started
        self.restarts: list[str] = []  # why it had to be started again (warm-up only)
        self.marks: dict[str, float] = {}  # wall epoch of the run's moments
        self.progress_stop = threading.Event()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {text}", flush=True)

    # -- waiting --------------------------------------------------------------------------
    def start_stream(self) -> None:
        """Start (or restart) the stream, appending to its log, and sample its CPU."""
        with self.log.open("ab") as log_file:
            self.proc = S.start_stream(self.settings, self.params, self.args.trigger, log_file,
                                       lake=not self.args.hot_only,
                                       board_trigger=self.args.board_trigger)  # fmt: skip
        if self.cpu is not None:
            self.cpu.close()
        self.cpu = S.CpuSampler(self.proc.pid)
        self.starts.append(time.time())

    def check(self, phase: str = "measured") -> None:
        if self.proc is not None and self.proc.poll() is not None:
            failure = S.failure(self.log)
            if (phase == "warmup" and len(self.starts) < self.args.start_attempts
                    and any(S.STARTUP_FAILURE in line for line in failure)):  # fmt: skip
                self.restarts.append(failure[-1])
                self.say(f"stream: died starting ({failure[-1][:90]}); restarting it")
                with self.log.open("a") as f:
                    f.write(f"\n{S.RESTART_MARK}\n")
                self.start_stream()
                return
            raise RuntimeError(f"the stream exited ({self.proc.returncode}); its log "
                               f"{self.log}:\n{S.tail(self.log)}")  # fmt: skip
        if self.tracker.errors:
            raise RuntimeError("; ".join(self.tracker.errors))

    def wait(self, phase: str, stages: tuple[str, ...], expected: int, timeout: float) -> float:
        """Until the ``expected`` events of ``phase`` reached ``stages`` (and the weather job
        ended); seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.check(phase)
            n = self.tracker.count(phase)
            if (
                n["consumed"] >= expected
                and all(n[s] >= expected for s in stages)
                and (phase == "warmup" or self.weather.poll())
            ):
                break
            time.sleep(0.25)
        return time.monotonic() - t0

    def progress(self) -> None:
        """A progress line every ``--progress`` seconds while the run goes."""
        while not self.progress_stop.wait(self.args.progress):
            phase = "measured" if self.tracker.of("measured") else "warmup"
            n = self.tracker.count(phase)
            cpu = self.cpu.samples[-1][1] if self.cpu and self.cpu.samples else None
            page = (f" · page rows seen {len(self.page.sightings)}"
                    if self.page and self.page.ready.is_set() else "")  # fmt: skip
            self.say(
                f"{phase}: consumed {n['consumed']} (sent so far {self.sent[phase]}) · board "
                f"{n['board']} · hour {n['hour']} · day {n['day']}{page}"
                + (f" · stream {cpu:.2f} cores" if cpu is not None else "")
            )

    def feed(self, lo: datetime, hi: datetime, phase: str) -> replay.ReplayStats:
        r = replay.make(self.settings, "flights", progress=False, start=lo, end=hi,
                        catch_up=True, max_rate=self.args.rate)  # fmt: skip
        stats = r.run(from_scratch=True)
        self.sent[phase] += stats.sent["flights"]
        return stats

    # -- the run --------------------------------------------------------------------------
    def go(self) -> None:
        """Run the bench; what it measured lands in :attr:`got` and :attr:`marks` as it goes
        (a run that fails still reports what it got)."""
        args, tracker, got = self.args, self.tracker, self.got
        kafka_io.ensure_topics(self.settings, ["flights", "flights_dlq"])
        self.log.write_bytes(b"")
        self.start_stream()
        stream_t0 = time.time()
        self.say(f"stream: pid {self.proc.pid}, lake trigger {args.trigger}, board trigger "
                 f"{args.board_trigger}, database "
                 f"{self.settings.mongo.database}")  # fmt: skip
        for target in (lambda: tracker.consume(consumer(self.settings)), tracker.poll_fast,
                       tracker.poll_lake, self.progress):  # fmt: skip
            threading.Thread(target=target, daemon=True).start()

        warm = got["warm"] = self.feed(self.start, self.measured_from, "warmup")
        n_warm = got["n_warm"] = warm.sent["flights"]
        self.say(f"warm-up: {n_warm} events sent; waiting for their board, hour and day "
                 "documents ...")  # fmt: skip
        waited = got["warm_waited"] = self.wait("warmup", self.stages, n_warm,
                                                args.warmup_timeout)  # fmt: skip
        n = tracker.count("warmup")
        if any(n[s] < n_warm for s in self.stages):
            raise RuntimeError(f"warm-up: {n} of {n_warm} events after {waited:.0f} s:\n"
                               f"{S.tail(self.log)}")  # fmt: skip
        warm_done = got["warm_done"] = time.time() - stream_t0
        self.say(f"warm-up: every stage read {warm_done:.1f} s after the stream started")
        if self.page is not None:  # now: its start would compete with the stream's
            self.page.start_server()
            self.page.open()
            self.page.ready.wait(self.page.timeout_s + 120)
            if self.page.error:
                self.say(f"page: FAILED ({self.page.error}); measuring without it")
            else:
                self.say(f"page: board drawn {self.page.load_s:.1f} s after navigation "
                         f"({self.page.rows_at_start} rows); watching it")  # fmt: skip

        self.marks["measured_start"] = time.time()
        first = self.feed(self.measured_from, self.mid, "measured")
        got["parts"].append(first)
        self.say(f"measured: first half, {first.sent['flights']} events sent in "
                 f"{first.seconds:.1f} s")  # fmt: skip
        self.weather.start()
        self.say(f"weather: {self.weather.files} files of {self.weather.day:%Y-%m-%d} landed; "
                 "weather_hourly started")  # fmt: skip
        second = self.feed(self.mid, self.end, "measured")
        got["parts"].append(second)
        self.marks["sent_end"] = time.time()
        n_meas = got["n_meas"] = first.sent["flights"] + second.sent["flights"]
        self.say(f"measured: {n_meas} events sent in {first.seconds + second.seconds:.1f} s; "
                 "waiting for the last ones and the weather job ...")  # fmt: skip
        got["drain"] = self.wait("measured", self.stages, n_meas, args.drain_timeout)
        self.marks["drained"] = time.time()
        if self.page is not None and self.page.ready.is_set() and not self.page.error:
            time.sleep(args.page_grace)  # the page's next poll and redraw
        rows = n_warm + n_meas
        t_settle = time.monotonic()
        while (not args.hot_only and S.lake_rows(self.log) < rows
               and time.monotonic() - t_settle < 60):  # fmt: skip
            time.sleep(0.5)  # the lake batch that carried the last events logs its timings
        self.marks["end"] = time.time()

    def close(self) -> int | None:
        self.progress_stop.set()
        self.tracker.stop.set()
        if self.page is not None:
            self.page.close()
        self.weather.close()
        code = S.stop(self.proc) if self.proc is not None else None
        if self.cpu is not None:
            self.cpu.close()
        mongo.database(self.settings).client.drop_database(self.settings.mongo.database)
        kafka_io.delete_topics(self.base, [t.name for t in self.settings.kafka.topics.values()])
        shutil.rmtree(self.tmp, ignore_errors=True)
        return code


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--env", default="ci", help="parameters/<env>.yaml whose stack is used (default ci)")
    add("--events", type=int, default=2000, help="measured events, at least (default 2000)")
    add("--rate", type=float, default=20.0, help="events per wall second (default 20)")
    add("--warmup", type=int, default=100, help="warm-up events, excluded (default 100)")
    service = JOBS["flights_stream"].service.params  # the product's triggers, as it runs
    add(
        "--trigger",
        default=service["trigger"],
        help=f"the lake path's trigger (default {service['trigger']}: the service's)",
    )
    add(
        "--board-trigger",
        default=service["board_trigger"],
        help=f"the live board's trigger (default {service['board_trigger']}: the service's)",
    )
    add(
        "--poll",
        type=float,
        default=0.25,
        help="seconds between reads of the board and hour documents (default 0.25)",
    )
    add(
        "--lake-poll",
        type=float,
        default=1.0,
        help="seconds between reads of the lake's fields and the day documents (default 1)",
    )
    add(
        "--start",
        type=utc,
        default=datetime(2013, 1, 2, 11, tzinfo=UTC),
        help="event time the warm-up starts at (ISO UTC, default 2013-01-02T11:00:00Z)",
    )
    add(
        "--weather-day",
        type=utc,
        default=None,
        help="UTC day whose weather files land midway (default: the day of the middle event)",
    )
    add("--no-page", action="store_true", help="no browser: skip the page measurement")
    add(
        "--hot-only",
        action="store_true",
        help="the hot path alone (-p lake=false): board and hour measured, no day document "
        "and no page (it draws once the lake path has written the day's KPIs): profiling the "
        "hot path without the lake path's load",
    )
    add(
        "--page-grace",
        type=float,
        default=8.0,
        help="seconds the page is still watched after the last event reached its documents",
    )
    add(
        "--warmup-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the warm-up events' board, hour and day documents",
    )
    add(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds to wait, after the last send, for the last events and the weather job",
    )
    add(
        "--start-attempts",
        type=int,
        default=3,
        help="times the stream is started when it dies in the warm-up on Spark's 10 s "
        "Python worker connect-back (default 3; each is reported)",
    )
    add("--progress", type=float, default=10.0, help="seconds between progress lines")
    add(
        "--out",
        type=Path,
        default=REPO_ROOT / "outputs" / "bench" / "latency.json",
        help="the result (JSON); the logs are written next to it",
    )
    args = parser.parse_args()
    logs.configure("WARNING")
    run = Run(args)
    run.say(
        f"latency bench: {args.warmup} warm-up + {args.events} events at {args.rate:g}/s "
        f"from {run.start:%Y-%m-%d %H:%M}Z, weather of {run.weather.day:%Y-%m-%d} midway"
    )
    try:
        run.go()
    except Exception as exc:  # noqa: BLE001 - reported with what was measured before it
        run.error = f"{type(exc).__name__}: {exc}"
        run.say(f"FAILED: {run.error.splitlines()[0]}")
    finally:
        exit_code = run.close()
    result = report(run, exit_code)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print_summary(result, args.out)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
