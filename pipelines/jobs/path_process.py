"""The lake path of a long-lived ``flights_stream`` in a process of its own, at a lower priority
than the live board's.

Why processes: the stream's queries shared one Spark application (one JVM, one Python driver)
and Spark does not preempt a task, so the lake path's refresh (recompute a day's clean flights
and KPIs from the raw log, 7 to 33 s) held both task slots and the hot path waited: a hot
micro-batch of 537 flights took 37.8 s during one refresh, and board documents stopped moving
for 40 s (``bench/latency.py``, 2 cores, FAIR pools ``hot``/``lake``, measured). Started with
``nice`` :data:`NICE`, the kernel's scheduler gives the live board's process most of the cores
whenever they compete (CFS weights: nice 10 gets about a tenth of nice 0's share), and the
lake path takes every cycle the board leaves.

:class:`PathProcess` (in the stream's driver) starts ``python -m pipelines.jobs.path_process
`` on a copy of the driver's settings, in the driver's process group (a fault
point that kills the job kills all, as a crash of the machine would), with ``SIGTERM`` when
the driver dies (Linux ``PR_SET_PDEATHSIG``); :meth:`PathProcess.check` raises
:class:`~pipelines.core.exceptions.StreamProcessError` once the process has ended, so the job
fails and its supervisor restarts every path; :meth:`PathProcess.stop` sends it ``SIGTERM``
(its Ctrl-C: the query stops between batches) and ``SIGKILL`` after a grace period. Its log
lines go where the driver's go; its counts come back as JSON in a file the driver reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
import structlog

from pipelines.core import config, logs, signals
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.core.exceptions import StreamProcessError

log = structlog.get_logger(__name__)

NICE = 10  # the lake path's niceness, added to the driver's
PATH = "lake"  # what StreamProcessError names
STOP_GRACE_S = 60.0  # SIGTERM -> SIGKILL


def _tie_to(parent: int, nice: int) -> None:
    """In the child, first thing: lower its priority (its JVM and Python workers inherit it)
    and take SIGTERM when ``parent`` (the driver's thread that started it) dies. Done here
    rather than in a ``preexec_fn``: the driver has threads running by then (Spark's,
    the enrichment's), and forking with a callback is not safe in a threaded process."""
    os.nice(nice)
    if not signals.tie_to_parent(parent):  # the driver died before prctl took effect
        raise SystemExit(0)


def prune_orphans(root: Path) -> list[Path]:
    """Remove the folders under ``root`` of lake paths whose driver is gone (a driver
    SIGKILLed, by its supervisor or a crash, never reached :meth:`PathProcess.stop`: 14 such
    folders of 12 KB after one day of the suite's kills); each folder is named by its driver's
    pid. A live driver's folder stays; so does one whose pid was taken again, until that
    process ends. Returns the folders removed."""
    removed = []
    for folder in root.glob(f"tarmac-{PATH}-*-*"):
        pid = folder.name.split("-")[2]
        if folder.is_dir() and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class PathProcess:
    """The lake path of :func:`pipelines.jobs.flights_stream.run` as a child process, every
    ``trigger``."""

    def __init__(
        self,
        settings: Settings,
        trigger: str,
        max_offsets: int | None,
        checkpoint: str,
        nice: int = NICE,
    ) -> None:
        self.path = PATH
        prune_orphans(Path(tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=f"tarmac-{PATH}-{os.getpid()}-"))
        self.result_path = self.folder / "result.json"
        params = settings.write(self.folder)
        cmd = [sys.executable, "-m", "pipelines.jobs.path_process",
               "--env", settings.env, "--parent", str(os.getpid()), "--nice", str(nice),
               "--parameters", str(params), "--trigger", trigger, "--checkpoint", str(checkpoint),
               "--result", str(self.result_path),
               *(["--max-offsets", str(max_offsets)] if max_offsets else [])]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
        log.info("flights_stream.path_process_started", path=PATH, pid=self.proc.pid, nice=nice)

    def check(self) -> None:
        """Raise :class:`StreamProcessError` if the process has ended."""
        code = self.proc.poll()
        if code is not None:
            raise StreamProcessError(self.proc.pid, code, self.path)

    def stop(self, grace_s: float = STOP_GRACE_S) -> dict[str, Any] | None:
        """Stop it (SIGTERM, then SIGKILL after ``grace_s``); its counts (``StreamResult``
        fields) when it stopped cleanly, else None."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        log.info("flights_stream.path_process_stopped", path=self.path, pid=self.proc.pid,
                 exit_code=self.proc.returncode)  # fmt: skip
        try:
            return json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            return None
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.jobs.path_process",
        description="The lake path of a long-lived flights_stream (started by its driver).",
    )
    parser.add_argument("--env", required=True)
    parser.add_argument("--parameters", type=Path, required=True, help="settings file (YAML)")
    parser.add_argument("--trigger", required=True, help="an interval such as 10s")
    parser.add_argument("--checkpoint", required=True, help="a local path or any Hadoop URI")
    parser.add_argument("--result", type=Path, required=True, help="where its counts go")
    parser.add_argument("--max-offsets", type=int, default=None)
    parser.add_argument("--parent", type=int, required=True, help="the driver's pid")
    parser.add_argument("--nice", type=int, default=NICE,
                        help=f"niceness added (default {NICE})")  # fmt: skip
    args = parser.parse_args(argv)
    _tie_to(args.parent, args.nice)
    stop = threading.Event()
    # SIGTERM from the driver (or Ctrl-C, SIGHUP): the query stops between batches, the last
    # refresh runs and the counts are written; a second signal while that runs is ignored
    signals.on_stop(lambda *_: stop.set())
    logs.configure()
    from pipelines.jobs import flights_stream  # noqa: PLC0415 - it imports this module

    settings = config.load(args.env, path=args.parameters)
    result = flights_stream.run(settings, args.trigger, args.max_offsets, args.checkpoint,
                                hot=False, lake=True, lake_process=False, stop=stop)  # fmt: skip
    args.result.write_text(json.dumps(result.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
