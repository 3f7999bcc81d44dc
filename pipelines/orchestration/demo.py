"""``make demo``: the whole product on the embedded stack, live.

Starts the stack; replays 2013 on an accelerated clock in the background (flight events to
Kafka, one weather file per replayed hour and the reference snapshots of each replayed day to
the landing zone); runs the flight stream long-lived, as the service cron's watchdog keeps
(:mod:`pipelines.orchestration.service`: the live board every 500 ms, the lake path every
10 s; started here unless it already runs), and the alerts service beside it (a round of the
alert rules every 5 s);
runs the file jobs through the runner (papermill + ledger), each in a process of its own, as
soon as the replay has landed a file for it; serves the dashboard with Voila. Ctrl-C, SIGTERM or
SIGHUP stops everything this command started (the stream service and the stack too, unless
they were already running).

The file jobs' schedule. Cron runs ``weather_hourly`` at minute 5 of every hour and
``reference_daily`` daily at 05:00: a few minutes after the hour's file lands. Replayed at 24x,
5 minutes of 2013 are 12 s, so the demo runs each job when its file lands (once per replayed
hour, once per replayed day), which keeps the same cadence without a clock of its own to drift.

Why 24x by default: the speed at which every freshness pill of the page stays green (the
registry's ``Staleness`` rules, drawn by ``pipelines/dashboard/health.py``):

- ``weather_hourly``, newest hour vs the page's clock (the stream's newest event), amber at
  3 h. The file of hour H lands when the clock passes H+1 h; until its run has finished the
  newest hour served is H-1, so the age peaks at 2 h + D x S - L x S for a run of D wall
  seconds at speed S, the stream L seconds behind the replay. Green needs D x S < 1 h (L is a
  margin): S < 3600 / D. A run is D = 57-73 s through papermill on a quiet machine (kernel,
  JVM and the refresh of the touched KPIs; issue 17), more next to the stream and the day's
  reference run: at 24x a run may take up to 150 s, twice the quiet figure. Runs never queue
  while D < 3600 / S = 150 s, the time between two files. Its wall rule (every run updates
  it, amber at 90 min) is far.
- ``flights_stream``, wall age of its last batch, amber at 5 min. A batch runs when events
  arrive; the longest silence of 2013 between two flight events is 98 min (9 Feb, 04:59 to
  08:00 UTC with one event between), most nights under 60 min: 98 min / 24 = 245 s, plus a
  batch of 10-30 s, stays under 300 s (60 min / 24 = 150 s on the other nights). Needs S
  above ~22 for that night, above ~13 for the others.
- ``reference_daily``, wall age, amber at 26 h: a run every replayed day is every hour.

A fresh demo does not wait through the night: 2013 opens at midnight UTC (19:00 in New York)
and the first flight event comes 8 h 15 min later, 20 minutes of an idle page at 24x. The
hours before it are landed at once (the day's reference snapshot, the weather hours), and the
paced replay starts 30 replayed minutes before the first event (:func:`quiet_start`).

Measured (``bench/demo_pace.py``, 2026-12-06, 2 quiet cores, a fresh start): 30 minutes of
the demo at 24x with no ``stale_source`` or ``failed_job`` alert, 13 weather runs, all
successful, 68.8 s p50 and 76.3 s at most (the budget is 150 s), one worker of each service (no
restart); the replay clock went from 07:45 to 19:39 UTC of 1 January, and the alerts service
opened 23 ``not_departed`` alerts about flights.

So 22x < S < 3600 / D: 24x, a day of 2013 in an hour of demo, about 1 event/s. At the old
300x a weather run fell 5 to 6 hours of 2013 behind (red at 6 h). On a machine so loaded that
a weather run takes more than 150 s (measured: 9 min at a load average of 16 on 2 cores),
lower the speed (``--speed``): the pills say so.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import structlog

from pipelines.core import logs, signals
from pipelines.core.config import REPO_ROOT, Settings, outputs_dir
from pipelines.landing import ingest
from pipelines.orchestration import service
from pipelines.orchestration.runner import Paths, display_path
from pipelines.stack import control, voila
from pipelines.stack.services import services, stop_group

log = structlog.get_logger(__name__)

SPEED = 24.0  # the default replay speed (see the module doc for why)
# replayed time the paced replay starts before the first flight event, when the window opens on
# hours without flights (``quiet_start``): 75 s of wall time at 24x
LEAD_IN = timedelta(minutes=30)
QUIET_WALL_S = 60.0  # less than this much wall time before the first event: nothing skipped
STREAM = "flights_stream"
SERVICES = (STREAM, "alerts")  # long-lived, as cron's watchdog keeps them
FILE_JOBS = {"weather_hourly": "weather", "reference_daily": "reference"}  # job -> its files
POLL_S = 1.0


def _spawn(
    cmd: list[str], log_path: Path | None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``cmd`` in a session of its own (stopped with its whole group); output to ``log_path``
    or, when None, to this terminal."""
    out: IO[bytes] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its whole life
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                            stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env,
                            start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is None:
        stop_group(proc, grace_s=20)
        log.info("demo.stopped", process=name)


class FileJobs:
    """The file jobs, each run by the runner in a process of its own when its files land."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zone = ingest.zone(settings)
        self.running: dict[str, subprocess.Popen] = {}
        self.runs = dict.fromkeys(FILE_JOBS, 0)

    def poll(self) -> None:
        for job, proc in list(self.running.items()):
            if proc.poll() is not None:
                del self.running[job]
                self.runs[job] += 1
                if proc.returncode != 0:
                    logs.step(f"{job:<24}  failed (exit {proc.returncode}): see "
                              f"`tarmac runs --job {job}`")  # fmt: skip
        for job, source in FILE_JOBS.items():
            if job not in self.running and self.zone.pending(source):
                cmd = [sys.executable, "-m", "pipelines", "run", job, "--env",
                       self.settings.env, "--trigger", "demo"]  # fmt: skip
                self.running[job] = _spawn(cmd, None)  # its one-line summary: this terminal

    def stop(self) -> None:
        for job, proc in self.running.items():
            _stop(proc, job)


def quiet_start(settings: Settings, start: str, speed: float) -> datetime | None:
    """Where the paced replay starts when the window opens on hours without flights, or None.

    2013 begins at midnight UTC, 19:00 in New York: the first flight event (a flight entering
    the board 2 h before its 05:15 departure) comes 8 h 15 min later, and the first weather
    hour at 07:00 UTC: at 24x, 20 minutes of an idle page. The demo lands those hours' files
    at once (``replay --catch-up``: the day's reference snapshot, the weather hours) and paces
    from :data:`LEAD_IN` before the first event. Only on a fresh start: a replay that already
    sent flights resumes from its saved position, as before."""
    from pipelines.sources import replay  # noqa: PLC0415 - pandas and the data set, only here

    if replay.make(settings, "all", progress=False).position().get("flights") is not None:
        return None
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    lead = timedelta(minutes=settings.replay.board_lead_minutes)
    events = replay.flight_events(t0, t0 + timedelta(days=2), lead)
    if events.empty:
        return None
    warm = events["event_time"].min().to_pydatetime() - LEAD_IN
    return warm if (warm - t0).total_seconds() / speed > QUIET_WALL_S else None


def run(settings: Settings, speed: float | None, start: str, cycles: int | None, port: int) -> int:
    """Run the demo until Ctrl-C / SIGTERM / SIGHUP (or ``cycles`` runs of the weather job);
    return an exit code."""
    speed = speed or SPEED
    signals.install()  # SIGTERM / SIGHUP: the Ctrl-C path below
    was_running = {s.name for s in services(settings) if s.pid() is not None}
    already = {name for name in SERVICES if service.is_running(settings, name)}
    paths = Paths(outputs_dir())  # $TARMAC_OUTPUTS_DIR, as the runs' and the services' own
    logs_dir = paths.logs
    py = sys.executable
    procs: dict[str, subprocess.Popen] = {}
    jobs = FileJobs(settings)
    try:
        control.up(settings)
        for name in SERVICES:
            _, st = service.start(settings, name)
            logs.step(f"{name:<24}  service {st['status']} (pid {st['pid']}), log {st['log']}")
        if (warm := quiet_start(settings, start, speed)) is not None:
            until = warm.isoformat().replace("+00:00", "Z")
            logs.step(f"{'replay':<24}  {start} -> {until} at once (no flight before), "
                      f"then {speed:g}x")  # fmt: skip
            with open(logs_dir / "demo-replay.log", "ab") as out:
                subprocess.run([py, "-m", "pipelines", "replay", "all", "--env", settings.env,
                                "--start", start, "--end", until, "--catch-up", "--no-progress"],
                               stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                               check=True)  # fmt: skip
            start = until
        procs["replay"] = _spawn([py, "-m", "pipelines", "replay", "all", "--env",
                                  settings.env, "--start", start, "--speed", str(speed),
                                  "--no-progress"], logs_dir / "demo-replay.log")  # fmt: skip
        if voila.DASHBOARD.exists():
            procs["voila"] = _spawn(voila.command(port, settings.dashboard),
                                    logs_dir / "demo-voila.log",
                                    env=voila.environment(settings.env))  # fmt: skip
            print(f"\n  Dashboard: http://127.0.0.1:{port}/   (replay clock: {speed:g}x)\n",
                  flush=True)  # fmt: skip
        print(f"  Logs: {display_path(logs_dir)}/demo-*.log, run notebooks: "
              f"{display_path(paths.runs)}/   Ctrl-C to stop\n", flush=True)  # fmt: skip
        finished = False
        while cycles is None or jobs.runs["weather_hourly"] < cycles:
            jobs.poll()
            if procs["replay"].poll() is not None and not finished:
                finished = True
                log.info("demo.replay_finished", hint="the year is replayed; Ctrl-C to stop")
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print("\nstopping the demo…", flush=True)
        # the interrupted notebook's cell task dies with the loop; asyncio would print it whole
        # ("Task exception was never retrieved") at exit: the run is in the ledger already
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    finally:
        signals.ignore()  # the cleanup runs whole
        jobs.stop()
        for name, proc in procs.items():
            _stop(proc, name)
        for name in SERVICES:
            if name not in already:
                service.stop(settings, name)
        for svc in services(settings):
            if svc.embedded and svc.name not in was_running:
                svc.stop()
    return 0
