"""The soak: the whole product long-lived, over many replayed days, on its own topics, lake,
database and outputs; what grows, what it costs, whether it stays right.

    python bench/soak.py [--env local] [--days 30] [--minutes 30] [--speed S]

What runs, as in production (each a real process, started the way an operator starts it):

- the stream as a service: ``python -m pipelines service start flights_stream`` (its
  supervisor, the worker with the live board, the lake path as its child at nice 10);
- the alerts as a service: ``python -m pipelines service start alerts`` (a round every 5 s);
- the replay of ``--days`` of 2013 from ``--start`` at ``--speed`` (default: the days over the
  minutes, e.g. 30 days in 30 min = 1,440x): ``python -m pipelines replay all``;
- the file jobs through the runner (papermill, ledger, lock) the way ``make demo`` drives them
  at an accelerated replay clock (``orchestration.demo.FileJobs``: a job runs as soon as its
  files have landed, one run of each at a time; cron's minute-5 / 05:00 schedule is a few
  replayed seconds at these speeds);
- ``housekeeping`` through the runner on an accelerated schedule: when the replay clock passes
  03:30 of every ``--housekeeping-every`` replayed day (cron's 03:30), unless one still runs
  (in the drain, by the window's end: a stream lagging on a loaded machine moves that clock
  late, and a one-day soak in the suite saw no housekeeping at all);
  with the product's defaults but ``-p hot_days=--hot-days``, the weekly FULL ``VACUUM`` on
  the replayed Sunday (LITE the other replayed days) and every retention in replayed time
  (``-p clock_speed=<the replay's speed>``: at 720x, VACUUM's 7 days keep a replaced file 15
  wall minutes, its floor; the run records' 14 days, 28 minutes), so that the soak's hour
  prunes what a month at 1x would (``--wall-retention``: the wall's, as a real install);
- Voila (``pipelines.stack.voila``, kernels culled as configured) and the page open in headless
  Chromium, refreshing itself (every 30 s, following the stream every second) and reloaded
  every ``--reload-min`` (a new kernel; the old one culled).

Each replayed day (UTC, by the stream's replay clock ``pipeline_state.flights_stream.
newest_event_time``) closes with a console line and a record in ``outputs/bench/soak.json``:
disk of each area (``bench/soak_parts.disk``), resident memory of each process group (max over
the day and at its close), documents per collection, the page's reads (every refresh's whole
read and job-health read, from its redraw stamp in Chromium; and the job-health read timed
from here), the latency p95 event -> board document (one event in ``--sample-every``, as
``bench/latency_track.py`` measures it), the services' restarts, the file jobs' and
housekeeping's runs (with what each housekeeping freed). After the replay, the soak waits until
the file jobs are idle, every KPI equals the independent computation
(``tests/e2e/test_processing.py``'s pandas oracle) and the page has shown a refresh, or
``--drain-timeout``; then stops
everything it started and drops its topics, database and folders (``--keep`` keeps them).

Targets (issue 18): disk and resident memory flat after housekeeping (growth no faster than
the data's own: the second half's bytes a day no more than 1.2x the first half's), the
job-health read <= 50 ms after 30 replayed days, the board latency p95 drifting less than 20 %
from the first day to the last, no restart, every KPI equal to the oracle. Measured figures:
``docs/operations.md``, "The soak".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/soak.py`
from bench import soak_parts as P  # noqa: E402
from bench.latency_stream import machine, summary  # noqa: E402
from bench.latency_track import consumer, utc  # noqa: E402
from pipelines.clients import kafka_io, mongo
from pipelines.core import config, logs, signals  # noqa: E402
from pipelines.core.config import REPO_ROOT  # noqa: E402
from pipelines.dashboard import queries  # noqa: E402
from pipelines.jobs.housekeeping import full_vacuum_today  # noqa: E402
from pipelines.orchestration import demo, service  # noqa: E402
from pipelines.serving import readmodels as RM  # noqa: E402
from pipelines.stack import ports, voila  # noqa: E402
from pipelines.stack.services import stop_group  # noqa: E402

SERVICES = ("flights_stream", "alerts")
TARGET_HEALTH_MS = 50.0
TARGET_DRIFT = 0.20
TARGET_GROWTH = 1.2  # second half's growth a day / first half's


class Soak:
    """One soak run: its processes, its samples and its days."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.base = config.load(args.env)
        tag = f"soak{uuid.uuid4().hex[:8]}"
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="tarmac-soak-"))
        self.outputs = self.work / "outputs"
        self.params = self.work / "parameters"
        self.settings = self.base.isolated(tag, self.work, database=f"bench_{tag}")
        self.settings.write(self.params)
        # every child (services, replay, runner, Voila's kernels) reads the soak's own
        # parameters and writes under its own outputs
        os.environ["TARMAC_PARAMETERS_DIR"] = str(self.params)
        os.environ["TARMAC_OUTPUTS_DIR"] = str(self.outputs)
        os.environ.pop("MONGO_DATABASE", None)
        # it answers (or a clear error); its reads give up after 2 min: a server that stops
        # answering ends the soak with that error (and everything stopped) rather than hanging
        self.db = mongo.database(self.settings, socket_timeout_ms=120_000)
        self.start = args.start
        self.end = args.start + timedelta(days=args.days)
        self.speed = args.speed or args.days * 86400 / (args.minutes * 60)
        # housekeeping's retentions in replayed time (its clock_speed): 14 days of run records
        # last 28 wall minutes at 720x, so the soak's hour shows what a month at 1x prunes
        self.retention_speed = 1.0 if args.wall_retention else self.speed
        self.procs: dict[str, subprocess.Popen] = {}
        self.jobs = demo.FileJobs(self.settings)
        self.housekeeping: subprocess.Popen | None = None
        self.hk_due: datetime = self._next_housekeeping(self.start)
        self.full_due: datetime = self._next_full(self.start)
        self.hk_modes: list[str] = []  # the vacuum mode of each housekeeping run, in order
        self.page: P.Page | None = None
        self.tracker = P.Sampled(self.settings, self.start, args.poll, 5.0,
                                 every=args.sample_every)  # fmt: skip
        self.samples: list[dict[str, Any]] = []  # memory: wall, clock, RSS, PSS
        self.days: list[dict[str, Any]] = []
        self.day = f"{self.start:%Y-%m-%d}"  # the replayed day (UTC) open now
        self.error: str | None = None
        self.oracle: dict[str, Any] | None = None
        self.drain_s: float | None = None
        self.stopped: dict[str, Any] = {}

    # -- helpers --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(f"[{(time.monotonic() - self.t0) / 60:5.1f} min] {text}", flush=True)

    def cli(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pipelines", *argv, "--env", self.settings.env]
        return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip

    def clock(self) -> datetime | None:
        state = self.db[RM.STATE].find_one({"_id": "flights_stream"}, {"newest_event_time": 1})
        t = (state or {}).get("newest_event_time")
        return t.astimezone(UTC) if t is not None else None

    def _next_housekeeping(self, after: datetime) -> datetime:
        day = after.replace(hour=3, minute=30, second=0, microsecond=0)
        return day if day > after else day + timedelta(days=1)

    def _next_full(self, after: datetime) -> datetime:
        """03:30 of the first replayed Sunday after ``after`` (``full_vacuum_today``'s week)."""
        day = self._next_housekeeping(after)
        while not full_vacuum_today("weekly", day):
            day += timedelta(days=1)
        return day

    def restarts(self) -> dict[str, int]:
        return {job: int(service.read_state(service.paths(self.settings.env, job,
                                                          self.outputs)).get("restarts", 0))
                for job in SERVICES}  # fmt: skip

    def batch_pids(self) -> list[int]:
        procs = [*self.jobs.running.values(), self.housekeeping]
        return [p.pid for p in procs if p is not None and p.poll() is None]

    # -- starting -------------------------------------------------------------------------
    def begin(self) -> None:
        kafka_io.ensure_topics(self.settings)
        for job in SERVICES:
            res = self.cli("service", "start", job, timeout=400)
            if res.returncode != 0:
                raise RuntimeError(f"service start {job}: {res.stdout}{res.stderr}")
            self.say(f"{job}: {res.stdout.strip().splitlines()[-1] if res.stdout else 'started'}")
        logs_dir = self.outputs / "logs"
        self.procs["replay"] = demo._spawn(  # noqa: SLF001 - the demo's own way to start it
            [sys.executable, "-m", "pipelines", "replay", "all", "--env", self.settings.env,
             "--start", self.start.isoformat(), "--end", self.end.isoformat(),
             "--speed", f"{self.speed:g}", "--no-progress"],
            logs_dir / "soak-replay.log",
        )  # fmt: skip
        port = ports.free_port()
        self.procs["voila"] = demo._spawn(  # noqa: SLF001
            voila.command(port, self.settings.dashboard), logs_dir / "soak-voila.log",
            env=voila.environment(self.settings.env),
        )  # fmt: skip
        voila.wait_ready(self.procs["voila"], port, logs_dir / "soak-voila.log")
        self.page = P.Page(port, self.args.reload_min * 60)
        self.page.start()
        threading.Thread(target=lambda: self.tracker.consume(consumer(self.settings)),
                         daemon=True).start()  # fmt: skip
        threading.Thread(target=self.tracker.poll_fast, daemon=True).start()
        self.say(
            f"replay of {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}Z at "
            f"{self.speed:g}x; page on port {port}; database {self.settings.mongo.database}"
        )

    # -- the loop -------------------------------------------------------------------------
    def tick(self, clock: datetime | None) -> None:
        """One round: the file jobs, housekeeping when due, a memory sample."""
        self.jobs.poll()
        self.housekeeping_when_due(clock)
        mem = P.memory(self.settings, self.outputs, self.procs["voila"].pid, self.batch_pids())
        self.samples.append({"wall": time.time(), "clock": clock, **mem})

    def housekeeping_when_due(self, clock: datetime | None) -> None:
        """Start housekeeping through the runner when ``clock`` passed its 03:30 and none
        runs (runs that fell due meanwhile: one, as cron's would queue behind its lock)."""
        if self.housekeeping is not None and self.housekeeping.poll() is not None:
            self.housekeeping = None
        if clock is not None and clock >= self.hk_due and self.housekeeping is None:
            self.hk_due = self._next_housekeeping(clock) + timedelta(
                days=self.args.housekeeping_every - 1
            )
            # the weekly FULL VACUUM on the replayed Sunday, as cron's would be on the real one
            # (the wall clock's weekday would make every run of a Sunday's soak FULL), or the
            # first run after it when one still ran then (the last soak then missed two of four)
            full = clock >= self.full_due
            if full:
                self.full_due = self._next_full(clock)
            mode = "full" if full else "lite"
            self.housekeeping = demo._spawn(  # noqa: SLF001
                [sys.executable, "-m", "pipelines", "run", "housekeeping", "--env",
                 self.settings.env, "--trigger", "soak", "-p", f"hot_days={self.args.hot_days}",
                 "-p", f"vacuum_mode={mode}", "-p", f"clock_speed={self.retention_speed}"],
                self.outputs / "logs" / "soak-housekeeping.log",
            )  # fmt: skip
            self.hk_modes.append(mode)

    def run(self) -> None:
        self.begin()
        next_sample = 0.0
        while True:
            clock = self.clock()
            if time.monotonic() >= next_sample:
                self.tick(clock)
                next_sample = time.monotonic() + self.args.sample_s
            else:
                self.jobs.poll()
            self.follow_days(clock)
            if self.procs["replay"].poll() is not None:
                break
            if self.tracker.errors:
                raise RuntimeError("; ".join(self.tracker.errors))
            time.sleep(1.0)
        self.say(
            f"replay done (exit {self.procs['replay'].returncode}); draining: the file jobs, "
            "housekeeping and the stream, until every KPI equals the oracle"
        )
        self.drain()
        self.follow_days(self.clock())
        last = f"{self.end - timedelta(microseconds=1):%Y-%m-%d}"
        while self.day <= last:  # the window's days the clock has not left (the last one)
            self.close_day(self.day)
            self.day = f"{datetime.fromisoformat(self.day) + timedelta(days=1):%Y-%m-%d}"

    def follow_days(self, clock: datetime | None) -> None:
        """Close every replayed day the clock has left (a clock that jumped over a day, the
        stream catching up, closes that day with the same figures, marked ``caught_up``)."""
        if clock is None:
            return
        day = f"{clock:%Y-%m-%d}"
        while self.day < day:
            self.close_day(self.day, caught_up=self.days_left_at(clock))
            self.day = f"{datetime.fromisoformat(self.day) + timedelta(days=1):%Y-%m-%d}"

    def days_left_at(self, clock: datetime) -> bool:
        """True when the clock is already past the day after :attr:`day` (a day skipped)."""
        nxt = datetime.fromisoformat(self.day).replace(tzinfo=UTC) + timedelta(days=2)
        return clock >= nxt

    def drain(self) -> None:
        t0 = time.monotonic()
        last_check = 0.0
        # the replayed time has reached the window's end even when the stream's clock lags
        # behind it (a loaded machine): cron's 03:30 runs of that time are due
        replayed = self.end - timedelta(microseconds=1)
        while time.monotonic() - t0 < self.args.drain_timeout:
            self.jobs.poll()
            self.housekeeping_when_due(replayed)
            idle = not self.jobs.running and self.housekeeping is None and not any(
                self.jobs.zone.pending(s) for s in demo.FILE_JOBS.values())  # fmt: skip
            equal = self.oracle is not None and self.oracle["equal"]
            if idle and not equal and time.monotonic() - last_check > 30:
                last_check = time.monotonic()
                self.oracle = P.oracle(self.db, self.start, self.end)
                equal = self.oracle["equal"]
            if idle and equal and self.page_drawn():  # the replay is over: it stays equal
                break
            time.sleep(2.0)
        self.drain_s = round(time.monotonic() - t0, 1)
        if self.oracle is None:
            self.oracle = P.oracle(self.db, self.start, self.end)
        self.say(f"oracle: {'every KPI equal' if self.oracle['equal'] else 'DIFFERS'} after "
                 f"{self.drain_s:.0f} s of drain: "
                 + ", ".join(f"{k} {v['differing']}/{v['expected']}"
                             for k, v in self.oracle.items() if isinstance(v, dict)))  # fmt: skip

    def page_drawn(self) -> bool:
        """Whether the page has shown a refresh (or has stopped for good, its error recorded):
        the drain waits for it, so that the last day has the page's figures. On a loaded machine
        the page's first load alone took 188 s of a short soak of 306 s in the suite (load 11 on
        2 cores, 2026-12-07): that soak ended with none."""
        page = self.page
        return page is None or bool(page.refreshes) or not page.thread.is_alive()

    # -- a replayed day -------------------------------------------------------------------
    def close_day(self, day: str, caught_up: bool = False) -> None:
        """Measure now and record ``day`` (``caught_up``: the clock went past it in one
        step, so its figures are those of the moment the stream left it)."""
        if any(d["day"] == day for d in self.days):
            return
        mine = [s for s in self.samples if s["clock"] is not None
                and f"{s['clock']:%Y-%m-%d}" == day] or self.samples[-1:]  # fmt: skip
        t0 = time.perf_counter()
        queries.read_health(self.db)
        health_direct = (time.perf_counter() - t0) * 1000
        since = self.days[-1]["closed_at"] if self.days else 0.0
        page = [r for r in (self.page.refreshes if self.page else []) if r[0] > since]
        record = {
            "day": day,
            "caught_up": caught_up,
            "closed_at": time.time(),
            "wall_min": round((time.monotonic() - self.t0) / 60, 2),
            "disk_bytes": P.disk(self.settings, self.outputs),
            "documents": P.documents(self.db),
            **{kind: _day_memory(mine, kind) for kind in MEMORY},
            "page": {
                "refreshes": len(page),
                "read_ms": summary([r[2] for r in page], 1),
                "health_ms": summary([r[3] for r in page], 1),
            },
            "health_read_ms_direct": round(health_direct, 1),
            "restarts": self.restarts(),
            "file_job_runs": dict(self.jobs.runs),
            "housekeeping_started": len(self.hk_modes),
        }
        self.days.append(record)
        d, r = record["disk_bytes"], record["rss_mb"]
        mb = {k: v / P.MB for k, v in d.items()}
        rss = " ".join(f"{g} {r[g]['max']:.0f}" for g in r)
        pss = " ".join(f"{g} {v['max']:.0f}" for g, v in record["pss_mb"].items()
                       if g in ("stream", "stream_lake", "batch_jobs"))  # fmt: skip
        self.say(
            f"day {day}: disk MB lake {mb['lake']:.1f} (log {mb['lake_log']:.1f}) kafka "
            f"{mb['kafka']:.1f} mongo {mb['mongo']:.1f} runs {mb['runs']:.1f} logs "
            f"{mb['logs']:.1f} | RSS MB max {rss} (PSS {pss}) | "
            f"page read p50 {record['page']['read_ms']['p50']} ms, health p50 "
            f"{record['page']['health_ms']['p50']} ms ({len(page)} refreshes) | hot buckets "
            f"{record['documents'][RM.BOARD_HOT]} | restarts {sum(record['restarts'].values())} "
            f"| housekeeping {len(self.hk_modes)}"
        )

    # -- the end --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything the soak started; drop its data unless ``--keep``."""
        if self.page is not None:
            self.page.close()
        self.tracker.stop.set()
        self.jobs.stop()
        if self.housekeeping is not None and self.housekeeping.poll() is None:
            stop_group(self.housekeeping, grace_s=30)
        for name, proc in self.procs.items():
            if proc.poll() is None:
                stop_group(proc, grace_s=20)
            self.stopped[name] = proc.poll()
        for job in SERVICES:
            res = self.cli("service", "stop", job, timeout=200)
            self.stopped[job] = res.returncode
        still = [job for job in SERVICES
                 if service.is_running(self.settings, job, self.outputs)]  # fmt: skip
        self.stopped["services_running_after_stop"] = still
        if not self.args.keep:
            try:  # a server that stopped answering: said in the result, the folders still go
                self.db.client.drop_database(self.settings.mongo.database)
                topics = [t.name for t in self.settings.kafka.topics.values()]
                kafka_io.delete_topics(self.base, topics)
            except Exception as exc:  # noqa: BLE001
                self.stopped["cleanup_error"] = f"{type(exc).__name__}: {exc}"[:300]
            if not self.args.workdir:
                shutil.rmtree(self.work, ignore_errors=True)

    def housekeeping_runs(self) -> list[dict[str, Any]]:
        docs = self.db[RM.RUNS].find({"job": "housekeeping"}).sort("start", 1)
        modes = iter(self.hk_modes)  # of the runs started here, in start order
        return [{"status": d.get("status"), "seconds": d.get("duration_s"),
                 "vacuum_mode": next(modes, None),
                 "freed_bytes": (d.get("metrics") or {}).get("freed_bytes"),
                 "freed_documents": (d.get("metrics") or {}).get("freed_documents"),
                 "steps": {k: {f: v.get(f) for f in ("files", "bytes", "documents")}
                           for k, v in ((d.get("metrics") or {}).get("steps") or {}).items()}}
                for d in docs]  # fmt: skip


# ---------------------------------------------------------------------------------- report
MEMORY = ("rss_mb", "pss_mb")  # resident, and proportional (forked workers' shared pages once)


def _day_memory(samples: list[dict[str, Any]], kind: str) -> dict[str, dict[str, float]]:
    """Each process group's max and last MB of ``kind`` over a day's ``samples``."""
    groups = sorted({g for s in samples for g in s[kind]})
    return {g: {"max": max(s[kind].get(g, 0) for s in samples),
                "last": samples[-1][kind].get(g, 0)} for g in groups}  # fmt: skip


def _memory_target(days: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Each group's max of ``kind`` on the second day (the first is a partial one) and on the
    last: flat memory means the two stay close."""
    first = days[1].get(kind, {}) if len(days) > 2 else {}
    last = days[-1].get(kind, {}) if days else {}
    return {g: {"day2_max": first.get(g, {}).get("max"), "last_max": v["max"]}
            for g, v in last.items()}  # fmt: skip


def _latency_by_day(soak: Soak) -> dict[str, dict[str, Any]]:
    by: dict[str, list[float]] = {}
    missing: dict[str, int] = {}
    for e in soak.tracker.of("measured"):
        day = f"{e.event_time:%Y-%m-%d}"
        lat = e.latency("board")
        if lat is None:
            missing[day] = missing.get(day, 0) + 1
        else:
            by.setdefault(day, []).append(lat)
    return {d: {**summary(v), "missing": missing.get(d, 0)} for d, v in sorted(by.items())}


def _whole_day(day: str, start: datetime, end: datetime) -> bool:
    """True when the UTC ``day`` (ISO) lies whole inside the window ``[start, end)``."""
    first = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start <= first and first + timedelta(days=1) <= end


def _growth(days: list[dict[str, Any]], area: str) -> dict[str, Any]:
    """Bytes a replayed day over the first and the second half of the days."""
    values = [d["disk_bytes"][area] for d in days]
    if len(values) < 4:
        return {"first_half_per_day": None, "second_half_per_day": None, "flat": None}
    mid = len(values) // 2
    first = (values[mid] - values[0]) / mid
    second = (values[-1] - values[mid]) / (len(values) - 1 - mid)
    flat = second <= TARGET_GROWTH * max(first, 0) or second <= 0
    return {"first_half_per_day": round(first), "second_half_per_day": round(second),
            "flat": flat}  # fmt: skip


def report(soak: Soak, code_error: str | None,
           housekeeping: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The soak's result: its days (with their latency), the targets, the oracle."""
    lat = _latency_by_day(soak)
    for d in soak.days:
        d["latency_board_s"] = lat.get(d["day"])
        d.pop("closed_at", None)
    days = soak.days
    # the drift between whole days of the window (a UTC day, as the latencies are grouped):
    # its first and last days are partial (at 05:00Z start, 01-31 held 5 hours, 20 samples)
    whole = [d for d in lat if _whole_day(d, soak.start, soak.end)] or list(lat)
    p95 = [lat[d]["p95"] for d in whole if lat[d].get("p95") is not None]
    drift = abs(p95[-1] - p95[0]) / p95[0] if len(p95) >= 2 and p95[0] else None
    last_health = days[-1]["page"]["health_ms"]["p50"] if days else None
    restarts = days[-1]["restarts"] if days else soak.restarts()
    memory = {kind: _memory_target(days, kind) for kind in MEMORY}
    areas = days[-1]["disk_bytes"].keys() if days else ()
    growth = {a: _growth(days, a) for a in areas}
    result = {
        "bench": "soak",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "env": soak.settings.env,
        "window": [soak.start.isoformat(), soak.end.isoformat()],
        "speed": soak.speed,
        "retention_clock_speed": soak.retention_speed,
        "wall_min": round((time.monotonic() - soak.t0) / 60, 1),
        "sample_every": soak.args.sample_every,
        "machine": machine(),
        "error": code_error,
        "days": days,
        "latency_board_s_all": summary(
            [x for e in soak.tracker.of("measured") if (x := e.latency("board")) is not None]
        ),  # fmt: skip
        "page": {
            "loads_s": soak.page.loads if soak.page else [],
            "errors": (soak.page.errors if soak.page else [])[:10],
        },  # fmt: skip
        "housekeeping": housekeeping,
        "oracle": soak.oracle,
        "drain_s": soak.drain_s,
        "stopped": soak.stopped,
        "targets": {
            "disk_growth": growth,
            **memory,
            "job_health_read_ms_last_day": last_health,
            "job_health_ok": last_health is not None and last_health <= TARGET_HEALTH_MS,
            "latency_p95_first_last": [p95[0], p95[-1]] if p95 else None,
            "latency_p95_days": [whole[0], whole[-1]] if whole else None,
            "latency_p95_drift": round(drift, 3) if drift is not None else None,
            "latency_drift_ok": drift is not None and drift < TARGET_DRIFT,
            "restarts": restarts,
            "no_restart": not any(restarts.values()),
            "oracle_equal": bool(soak.oracle and soak.oracle["equal"]),
        },
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--env", default="local", help="parameters/<env>.yaml whose stack is used (default local)")
    add("--days", type=int, default=30, help="replayed days of 2013 (default 30)")
    add(
        "--minutes",
        type=float,
        default=30.0,
        help="wall minutes the replay takes when --speed is not given (default 30)",
    )
    add(
        "--speed",
        type=float,
        default=None,
        help="replay speed (seconds of 2013 a wall second; default: days / minutes)",
    )
    add(
        "--start",
        type=utc,
        default=datetime(2013, 1, 1, 5, tzinfo=UTC),
        help="replay start, ISO UTC (default 2013-01-01T05:00:00Z: midnight in New York)",
    )
    add("--hot-days", type=int, default=3, help="housekeeping's hot_days (default 3)")
    add(
        "--wall-retention",
        action="store_true",
        help="housekeeping's retentions in wall time (default: in replayed time, its "
        "clock_speed the replay's speed, as months at 1x would prune)",
    )
    add(
        "--housekeeping-every",
        type=int,
        default=1,
        help="housekeeping at 03:30 of every N replayed days (default 1)",
    )
    add(
        "--reload-min",
        type=float,
        default=10.0,
        help="the page is reloaded every this many minutes (a new kernel; default 10)",
    )
    add(
        "--sample-every",
        type=int,
        default=20,
        help="one event in N is tracked to its board document (default 20)",
    )
    add(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between reads of the sampled events' board documents (default 1)",
    )
    add("--sample-s", type=float, default=5.0, help="seconds between memory samples")
    add(
        "--drain-timeout",
        type=float,
        default=1200.0,
        help="seconds after the replay to wait for the jobs and the oracle (default 1200)",
    )
    add(
        "--workdir",
        type=Path,
        default=None,
        help="the soak's own parameters, lake, landing and outputs (default: a temp folder, "
        "removed at the end)",
    )
    add("--keep", action="store_true", help="keep the topics, database and folders")
    add("--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "soak.json",
        help="the result (JSON)")  # fmt: skip
    args = parser.parse_args()
    logs.configure("WARNING")
    # Ctrl-C, SIGTERM and SIGHUP end the soak through its cleanup, also when it was started in
    # the background of a script (which leaves SIGINT ignored: `kill -INT` did nothing)
    signals.on_stop(signals.as_ctrl_c)
    soak = Soak(args)
    soak.say(f"soak: {args.days} days of 2013 from {soak.start:%Y-%m-%d %H:%M}Z at "
             f"{soak.speed:g}x (~{args.days * 86400 / soak.speed / 60:.0f} min of replay), "
             f"work folder {soak.work}")  # fmt: skip
    error = None
    try:
        soak.run()
    except BaseException as exc:  # noqa: BLE001 - reported with what was measured (Ctrl-C too)
        error = f"{type(exc).__name__}: {exc}"
        soak.say(f"FAILED: {error.splitlines()[0][:300]}")
    finally:
        signals.ignore()  # a second signal does not cut the cleanup short
        try:  # the ledger's housekeeping runs, if the database still answers
            result_hk = soak.housekeeping_runs()
        except Exception as exc:  # noqa: BLE001 - reported; what was started is stopped anyway
            result_hk = []
            soak.say(f"housekeeping runs not read: {type(exc).__name__}: {exc}"[:300])
        soak.close()
    result = report(soak, error, result_hk)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    t = result["targets"]
    soak.say(
        f"targets: job health {t['job_health_read_ms_last_day']} ms (<= {TARGET_HEALTH_MS:g}) · "
        f"latency p95 first/last {t['latency_p95_first_last']} drift {t['latency_p95_drift']} "
        f"(< {TARGET_DRIFT:.0%}) · restarts {t['restarts']} · oracle "
        f"{'equal' if t['oracle_equal'] else 'DIFFERS'} · disk flat "
        f"{ {a: g['flat'] for a, g in t['disk_growth'].items()} }; wrote {args.out}"
    )
    ok = error is None and t["oracle_equal"] and t["no_restart"] and not (
        result["stopped"].get("services_running_after_stop"))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
