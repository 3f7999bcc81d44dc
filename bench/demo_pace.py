"""``make demo`` at its default pace for half an hour: does the product flag itself stale?

Issue 17's target: 30 minutes of ``make demo`` at its default speed without a source or job
flagged stale by the demo's own pace. This runs ``python -m pipelines demo`` (the stack, the
replay at its default speed, the stream and the alerts as services, the file jobs through the
runner, Voila) for ``--minutes``, then stops it with SIGTERM (its Ctrl-C path), and reads what
the product itself recorded, independently of the page:

- every alert the ``alerts`` service opened meanwhile (MongoDB ``alerts``, by rule: the rules
  of "Needs attention"; ``stale_source`` and ``failed_job`` are the ones about the pipeline
  itself, the others about flights);
- every run of the file jobs in the ledger (``pipeline_runs``: status and duration; at 24x a
  weather run must end within 150 s, the time between two files, docs in
  ``pipelines/orchestration/demo.py``);
- the stream's and the alerts' service workers started (the ledger has one document a worker:
  more than one is a restart).

    python bench/demo_pace.py [--env local] [--minutes 30]

What it reports is read every 30 s while the demo runs (the demo stops the stack it started).
Uses the env's own database and replay position, as ``make demo`` does (run it on a machine
where nothing else runs: the demo's pace assumes the 2 cores are its own). Writes
``outputs/bench/demo_pace.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pipelines.clients import mongo
from pipelines.core import config
from pipelines.core.config import REPO_ROOT
from pipelines.stack.ports import free_port

SELF_RULES = ("stale_source", "failed_job")  # the rules about the pipeline itself


def _utc(when: datetime) -> datetime:
    """A BSON date as an aware UTC datetime (whatever the client's ``tz_aware``)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def alerts_since(db, since: datetime) -> list[dict]:
    """The alerts opened at or after ``since`` (a scan: a bench's read every 30 s)."""
    return [a for a in db.alerts.find({}) if a.get("opened_at") and _utc(a["opened_at"]) >= since]


def runs_since(db, env: str, since: datetime) -> dict[str, dict]:
    """Per job: its runs started at or after ``since`` (status counts, durations)."""
    out: dict[str, dict] = {}
    for doc in db.pipeline_runs.find({"env": env}):
        if not doc.get("start") or _utc(doc["start"]) < since:
            continue
        job = out.setdefault(doc["job"], {"runs": 0, "status": Counter(), "durations": []})
        job["runs"] += 1
        job["status"][doc.get("status")] += 1
        if doc.get("duration_s") is not None and doc.get("trigger") != "service":
            job["durations"].append(float(doc["duration_s"]))
    for job in out.values():
        d = sorted(job.pop("durations"))
        job["status"] = dict(job["status"])
        job["duration_s"] = {"n": len(d), "p50": round(statistics.median(d), 1) if d else None,
                             "max": round(d[-1], 1) if d else None}  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="local")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall minutes (default 30)")
    parser.add_argument("--speed", type=float, default=None, help="default: the demo's own")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "outputs" / "bench" / "demo_pace.json")  # fmt: skip
    args = parser.parse_args()
    settings = config.load(args.env)
    log_path = args.out.with_suffix(".log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipelines", "demo", "--env", args.env,
           "--port", str(free_port())]  # fmt: skip
    if args.speed:
        cmd += ["--speed", str(args.speed)]
    started = datetime.now(UTC)
    t0 = time.monotonic()
    db, alerts, runs, state = None, [], {}, {}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            while time.monotonic() - t0 < args.minutes * 60:
                if proc.poll() is not None:
                    break
                time.sleep(30)
                try:  # the demo starts the stack (and stops it when it ends: read before)
                    db = db if db is not None else mongo.database(settings)
                    alerts = alerts_since(db, started)
                    runs = runs_since(db, settings.env, started)
                    state = db.pipeline_state.find_one({"_id": "flights_stream"}) or {}
                except Exception as exc:  # noqa: BLE001 - not up yet: said, tried again
                    print(f"[{(time.monotonic() - t0) / 60:5.1f} min] no MongoDB yet: "
                          f"{type(exc).__name__}", flush=True)  # fmt: skip
                    continue
                opened = Counter(a["rule"] for a in alerts)
                print(f"[{(time.monotonic() - t0) / 60:5.1f} min] alerts opened "
                      f"{dict(opened) or 'none'} · runs "
                      f"{ {j: r['runs'] for j, r in runs.items()} }", flush=True)  # fmt: skip
        finally:
            ended = proc.poll()
            if ended is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(240)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(30)
    wall = round((time.monotonic() - t0) / 60, 1)
    by_rule = Counter(a["rule"] for a in alerts)
    own = [{k: a.get(k) for k in ("_id", "rule", "subject", "peak_severity", "message",
                                  "opened_at", "closed_at")}
           for a in alerts if a["rule"] in SELF_RULES]  # fmt: skip
    result = {
        "benchmark": "demo_pace",
        "when": started.isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "load_at_end": os.getloadavg()},
        "command": " ".join(cmd[1:]),
        "minutes": wall,
        "ended_by_itself": ended is not None,
        "exit_code": proc.returncode,
        "alerts_opened_by_rule": dict(by_rule),
        "pipeline_alerts": own,
        "runs": runs,
        "stream_newest_event_time": state.get("newest_event_time"),
        "log": str(log_path),
        "pass": not own and ended is None,
    }
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
