"""The latency bench's processes (``bench/latency.py``): the stream under test, its CPU and
memory, its micro-batches as it logged them, and the weather job landing a day midway.

- :func:`start_stream`: ``python -m pipelines job flights_stream --env E -p trigger=...
  -p board_trigger=...`` on the bench's own parameters (``TARMAC_PARAMETERS_DIR``), every log line
  as JSON into the bench's stream log (``--verbose``);
- :class:`CpuSampler`: every second, the CPU time of the stream's whole process tree (Python
  driver, Spark's JVM, the Python workers; ``psutil``) and its resident memory;
- :func:`batches`: the ``flights_board.batch``, ``flights_stream.batch`` and
  ``flights_stream.refreshed`` lines of that log;
- :class:`WeatherDay`: the weather files of one day replayed into the landing zone, then
  ``python -m pipelines job weather_hourly --env E`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import psutil

from pipelines.core.config import REPO_ROOT, Settings
from pipelines.sources import replay


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (numpy's default method)."""
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """n, p50, p95, max, min, mean of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "min": None, "mean": None}
    return {
        "n": len(values),
        "p50": round(quantile(values, 0.50), digits),
        "p95": round(quantile(values, 0.95), digits),
        "max": round(max(values), digits),
        "min": round(min(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def machine() -> dict[str, Any]:
    """The machine a bench result was measured on: cores, Python, load average at the end."""
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip


def child_env(params: Path) -> dict[str, str]:
    """The environment of a job subprocess on the bench's parameters, logging JSON."""
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params), "TARMAC_LOG_FORMAT": "json",
           "TARMAC_LOG_LEVEL": "INFO", "TARMAC_VERBOSE": "1"}  # fmt: skip
    env.pop("MONGO_DATABASE", None)  # would replace the bench database in the child
    return env


def start_stream(settings: Settings, params: Path, trigger: str, log_file: IO[bytes],
                 lake: bool = True, board_trigger: str = "500ms") -> subprocess.Popen:  # fmt: skip
    cmd = [sys.executable, "-m", "pipelines", "job", "flights_stream", "--env", settings.env,
           "-p", f"trigger={trigger}", "-p", f"board_trigger={board_trigger}",
           *([] if lake else ["-p", "lake=false", "-p", "hot=true"])]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=child_env(params), stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int | None:
    """SIGTERM to the process group, SIGKILL after ``grace_s``; its exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    return proc.poll()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# how the stream dies when its transformWithState pre-init Python worker (pyspark imported from
# pyspark.zip, no bytecode: ~1.5 s of CPU) misses Spark's hard-coded 10 s connect-back
STARTUP_FAILURE = "Python worker failed to connect back"
RESTART_MARK = "==== bench: restarting the stream ===="  # in its log: what follows is the new one


def failure(path: Path, context: int = 6) -> list[str]:
    """Why the stream stopped, from its log: the first Python error raised in it, with the
    ``context`` frames above it (Spark repeats it in every failed task), or its last lines."""
    lines = path.read_text(errors="replace").split(RESTART_MARK)[-1].splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line) and "py4j" not in line:
            frames = [x for x in lines[max(0, i - 2 * context) : i] if x.startswith("  File")]
            return [x.strip() for x in frames[-context:]] + [line[:500]]
    return [x[:300] for x in lines[-15:]]


# ------------------------------------------------------------------------------------ CPU


class CpuSampler:
    """Samples the process tree rooted at ``pid`` every ``every_s`` in a daemon thread:
    (wall time, cores used since the previous sample, resident bytes, processes, cores of
    the lake path's process and its descendants: ``jobs/path_process.py``, its JVM)."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        self.root, self.every_s = pid, every_s
        self.samples: list[tuple[float, float, int, int, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)
        self.thread.start()

    def _tree(self) -> list[psutil.Process]:
        """The root and its descendants; empty when the root is gone (a child that exits
        while they are listed makes psutil fail: listed again)."""
        for _ in range(3):
            try:
                root = psutil.Process(self.root)
                return [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                if not psutil.pid_exists(self.root):
                    return []
            except psutil.Error:
                return []
        return []

    def _run(self) -> None:
        seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds
        last = time.monotonic()
        while not self.stop.wait(self.every_s):
            used, rss, n, lake = 0.0, 0, 0, 0.0
            now_seen: dict[tuple[int, float], float] = {}
            tree = self._tree()
            lake_pids = _lake_pids(tree)
            for proc in tree:
                try:
                    with proc.oneshot():
                        key = (proc.pid, proc.create_time())
                        t = proc.cpu_times()
                        cpu = t.user + t.system
                        mem = proc.memory_info().rss
                except psutil.Error:  # unreadable now: keep what it had (not counted twice)
                    now_seen.update({k: v for k, v in seen.items() if k[0] == proc.pid})
                    continue
                # a process born since the last sample: all its CPU time is in this interval
                used += cpu - seen.get(key, 0.0)
                if proc.pid in lake_pids:
                    lake += cpu - seen.get(key, 0.0)
                now_seen[key] = cpu
                rss += mem
                n += 1
            if not now_seen:  # nothing listed: this interval's time counts in the next one
                continue
            now = time.monotonic()
            if seen:
                self.samples.append((time.time(), used / (now - last), rss, n,
                                     lake / (now - last)))  # fmt: skip
            seen, last = now_seen, now

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def report(self, start: float, end: float) -> dict[str, Any]:
        """Cores (average, p95, max) and resident memory of the samples within [start, end]."""
        mine = [s for s in self.samples if start <= s[0] <= end]
        cores = [s[1] for s in mine]
        lake = [s[4] for s in mine]
        rss = [s[2] / 2**20 for s in mine]
        return {
            "samples": len(mine),
            "cores_avg": round(statistics.fmean(cores), 3) if cores else None,
            "cores_p95": round(quantile(cores, 0.95), 3) if cores else None,
            "cores_max": round(max(cores), 3) if cores else None,
            "rss_mb_avg": round(statistics.fmean(rss), 1) if rss else None,
            "rss_mb_max": round(max(rss), 1) if rss else None,
            "processes_max": max((s[3] for s in mine), default=None),
            # the split: the lake path's process (at its lower priority) and the rest (the
            # driver, the live board's JVM and workers)
            "lake_path_cores_avg": round(statistics.fmean(lake), 3) if lake else None,
            "hot_path_cores_avg": (
                round(statistics.fmean(cores) - statistics.fmean(lake), 3) if lake else None
            ),  # fmt: skip
        }


def _lake_pids(tree: list[psutil.Process]) -> set[int]:
    """The pids of the lake path's process (``python -m pipelines.jobs.path_process``) and
    its descendants, among ``tree``."""
    for proc in tree:
        try:
            if "pipelines.jobs.path_process" in proc.cmdline():
                return {proc.pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.Error:
            continue
    return set()


# ------------------------------------------------------------------------------------ log


def log_lines(path: Path, events: tuple[str, ...]) -> list[dict[str, Any]]:
    """The JSON log lines of ``events`` in the stream's log, in order, with ``_at`` (epoch)."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{") or not any(f'"{e}"' in line for e in events):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") in events:
            rec["_at"] = datetime.fromisoformat(rec["timestamp"]).timestamp()
            rows.append(rec)
    return rows


def lake_rows(path: Path) -> int:
    """Kafka records the lake path has logged as processed."""
    return sum(r.get("rows_in", 0) for r in log_lines(path, ("flights_stream.batch",)))


def batches(path: Path, start: float, end: float) -> dict[str, Any]:
    """The micro-batches of each path and the publisher's refreshes logged within
    [start, end] (wall epoch), their durations in seconds."""
    rows = log_lines(path, ("flights_board.batch", "flights_stream.batch",
                            "flights_stream.refreshed"))  # fmt: skip
    inside = [r for r in rows if start <= r["_at"] <= end]
    board = [r for r in inside if r["event"] == "flights_board.batch"]
    lake = [r for r in inside if r["event"] == "flights_stream.batch"]
    refreshed = [r for r in inside if r["event"] == "flights_stream.refreshed"]
    steps: dict[str, list[float]] = defaultdict(list)
    for r in refreshed:
        for k, v in (r.get("seconds") or {}).items():
            steps[k].append(v)
    phases: dict[str, list[float]] = defaultdict(list)
    for r in board:  # the previous batch's phases, as Spark timed them
        for k, v in (r.get("previous_ms") or {}).items():
            phases[k].append(float(v))
    return {
        "board": {
            "batches": len(board),
            "spark_phases_ms": {k: summary(v, 0) for k, v in sorted(phases.items())},
            "seconds": summary([r["seconds"] for r in board]),
            "events_per_batch": summary([float(r["events"]) for r in board], 1),
            "seconds_between_batch_ends": summary(
                [b["_at"] - a["_at"] for a, b in pairwise(board)]
            ),  # fmt: skip
        },
        "lake": {
            "batches": len(lake),
            "seconds": summary([r["seconds"]["total"] for r in lake]),
            "rows_per_batch": summary([float(r["rows_in"]) for r in lake], 1),
            "seconds_between_batch_ends": summary(
                [b["_at"] - a["_at"] for a, b in pairwise(lake)]
            ),  # fmt: skip
        },
        "refresh": {
            "runs": len(refreshed),
            "seconds_total": summary([sum((r.get("seconds") or {}).values()) for r in refreshed]),
            "seconds_median_by_step": {
                k: round(statistics.median(v), 2) for k, v in steps.items()
            },  # fmt: skip
        },
        "batches_logged_in_all": {
            "board": sum(r["event"] == "flights_board.batch" for r in rows),
            "lake": sum(r["event"] == "flights_stream.batch" for r in rows),
        },
    }


# -------------------------------------------------------------------------------- weather


class WeatherDay:
    """The weather files of the UTC ``day`` landed (a catch-up replay of ``weather``), then the
    ``weather_hourly`` job run on them as a subprocess (:meth:`start`, :meth:`wait`)."""

    def __init__(self, settings: Settings, params: Path, day: datetime, log: Path) -> None:
        self.settings, self.params, self.day, self.log = settings, params, day, log
        self.files = 0
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.seconds: float | None = None
        self.exit_code: int | None = None

    def start(self) -> None:
        run = replay.make(self.settings, "weather", progress=False, start=self.day,
                          end=self.day + timedelta(days=1), catch_up=True)  # fmt: skip
        self.files = run.run(from_scratch=True).sent["weather"]
        cmd = [sys.executable, "-m", "pipelines", "job", "weather_hourly", "--env",
               self.settings.env]  # fmt: skip
        self.started_at = time.time()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(self.params),
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip

    def poll(self) -> bool:
        """True once the job has ended (or was never started)."""
        if self.proc is None:
            return True
        if self.proc.poll() is None:
            return False
        if self.seconds is None:
            self.seconds = time.time() - (self.started_at or time.time())
            self.exit_code = self.proc.returncode
        return True

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)
        self.poll()

    def report(self, measured_t0: float) -> dict[str, Any]:
        return {
            "day": self.day.date().isoformat(),
            "files_landed": self.files,
            "job_started_after_measured_start_s": None if self.started_at is None
            else round(self.started_at - measured_t0, 1),
            "job_seconds": None if self.seconds is None else round(self.seconds, 1),
            "job_exit_code": self.exit_code,
            "log": str(self.log),
        }  # fmt: skip
