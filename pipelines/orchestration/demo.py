"""``make demo``: the whole product on the embedded stack.

Starts the stack, replays 2013 on an accelerated clock in the background (flights to Kafka,
weather and reference files), serves the dashboard with Voila, and runs the scheduled jobs
through the runner (papermill + ledger) in a loop, as cron would. Ctrl-C stops everything this
command started (the stack too, unless it was already running).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import structlog

from pipelines.core import logs
from pipelines.core.config import REPO_ROOT, Settings, outputs_dir
from pipelines.jobs.registry import PIPELINE
from pipelines.orchestration import runner
from pipelines.stack import control, voila
from pipelines.stack.services import services, stop_group

log = structlog.get_logger(__name__)


def _spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its whole life
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                            env=env, start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is None:
        stop_group(proc, grace_s=20)
        log.info("demo.stopped", process=name)


def run(settings: Settings, speed: float, start: str, cycles: int | None, port: int) -> int:
    """Run the demo until Ctrl-C (or ``cycles`` rounds of the jobs); return an exit code."""
    was_running = {s.name for s in services(settings) if s.pid() is not None}
    control.up(settings)
    logs_dir = outputs_dir() / "logs"
    py = sys.executable
    procs = {
        "replay": _spawn([py, "-m", "pipelines", "replay", "all", "--env", settings.env,
                          "--start", start, "--speed", str(speed), "--no-progress"],
                         logs_dir / "demo-replay.log"),
    }  # fmt: skip
    dashboard = REPO_ROOT / "notebooks" / "dashboard.ipynb"
    if dashboard.exists():
        procs["voila"] = _spawn(voila.command(port), logs_dir / "demo-voila.log",
                                env=voila.environment(settings.env))  # fmt: skip
        print(f"\n  Dashboard: http://127.0.0.1:{port}/   (replay clock: {speed:g}x)\n",
              flush=True)  # fmt: skip
    print(f"  Logs: {logs_dir}/demo-*.log, run notebooks: outputs/runs/   Ctrl-C to stop\n",
          flush=True)  # fmt: skip
    rounds = 0
    try:
        while cycles is None or rounds < cycles:
            for job in PIPELINE:
                try:
                    result = runner.run(job, settings.env, {}, trigger="demo")
                    logs.step(runner.summary_line(result.last))
                except Exception as exc:  # a failed run is in the ledger; keep the demo going
                    logs.step(f"{job:<24}  failed     {exc}")
            rounds += 1
            if procs["replay"].poll() is not None and cycles is None:
                log.info("demo.replay_finished", hint="the year is replayed; Ctrl-C to stop")
                time.sleep(30)
    except KeyboardInterrupt:
        print("\nstopping the demo…", flush=True)
        # the interrupted notebook's cell task dies with the loop; asyncio would print it whole
        # ("Task exception was never retrieved") at exit: the run is in the ledger already
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    finally:
        for name, proc in procs.items():
            _stop(proc, name)
        for svc in services(settings):
            if svc.embedded and svc.name not in was_running:
                svc.stop()
    return 0
