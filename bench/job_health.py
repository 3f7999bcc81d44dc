"""The page's job-health read as the ledger grows: a scratch database's ``pipeline_runs`` filled
with ``--days`` days of one run a minute (ending now, the jobs in turn, one run in 37 failed)
through the real ledger code (``Ledger.write``: the run document, then its job's
``pipeline_health`` document), and after every ``--every`` days both reads measured
(``--repeat`` times, median):

- ``before``: what the page read until issue 18, ``pipeline_runs`` started in the last 8 days
  (a ``start`` filter: FerretDB scans the collection) into a DataFrame;
- ``after``: ``queries.read_health`` (one document per job, by ``_id``) and
  ``health.pipeline_health`` over it.

    python bench/job_health.py [--env local] [--days 8] [--every 1] [--repeat 5]

Writes ``outputs/bench/job_health.json``; the database is dropped. Target: the job-health read
at most 50 ms, whatever the ledger holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.clients import mongo
from pipelines.core import config
from pipelines.core.config import REPO_ROOT
from pipelines.dashboard import health, kpi_frames, queries
from pipelines.dashboard.health import pipeline_health
from pipelines.orchestration.ledger import Ledger
from pipelines.serving import readmodels as RM

TARGET_MS = 50.0
PROJ = {"job": 1, "status": 1, "start": 1, "end": 1, "error": 1}


def read_before(db, now: datetime) -> pd.DataFrame:
    """The page's former read (``queries.read_runs``): 8 days of ``pipeline_runs``."""
    cursor = db[RM.RUNS].find({"start": {"$gte": now - timedelta(days=8)}}, PROJ)
    frame = kpi_frames.frame_of(cursor, PROJ)
    for c in ("start", "end"):
        frame[c] = pd.to_datetime(frame[c], utc=True, errors="coerce")
    return frame


def read_after(db, now: datetime) -> list[dict]:
    return pipeline_health(queries.read_health(db), now)


def median_ms(fn, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), value


def run_doc(i: int, start: datetime, env: str) -> dict:
    job = health.JOBS[i % len(health.JOBS)]
    bad = i % 37 == 0
    run_id = f"{start:%Y%m%dT%H%M%S}-{i:06x}"
    return {
        "_id": run_id, "run_id": run_id, "job": job, "env": env, "params": {"env": env},
        "status": "failed" if bad else "success", "start": start,
        "end": start + timedelta(seconds=20), "duration_s": 20.0, "rows_in": 100,
        "rows_out": 99, "rows_rejected": 1, "attempt": 1, "trigger": "bench",
        "error": {"type": "KafkaTimeoutError", "message": "broker did not answer"} if bad else None,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="local")
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--every", type=float, default=1.0, help="days between two measures")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "job_health.json")
    args = ap.parse_args()

    name = f"tarmac_bench_health_{uuid.uuid4().hex[:8]}"
    base = config.load(args.env)
    settings = base.model_copy(update={"mongo": base.mongo.model_copy(update={"database": name})})
    db = mongo.database(settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    total = int(args.days * 24 * 60)
    every = max(1, int(args.every * 24 * 60))
    first = now - timedelta(minutes=total)
    points, write_s = [], 0.0
    try:
        with tempfile.TemporaryDirectory() as logs:
            ledger = Ledger(settings, Path(logs))
            for i in range(total):
                started = time.perf_counter()
                assert ledger.write(run_doc(i, first + timedelta(minutes=i), settings.env))
                write_s += time.perf_counter() - started
                if (i + 1) % every == 0 or i + 1 == total:
                    at = first + timedelta(minutes=i + 1)
                    before_ms, frame = median_ms(lambda at=at: read_before(db, at), args.repeat)
                    after_ms, rows = median_ms(lambda at=at: read_after(db, at), args.repeat)
                    points.append({
                        "days": round((i + 1) / 1440, 2), "runs": i + 1,
                        "before_ms": before_ms, "before_rows": len(frame),
                        "after_ms": after_ms, "levels": [r["level"] for r in rows],
                        "failures_24h": [r["failures_24h"] for r in rows],
                    })  # fmt: skip
                    print(json.dumps(points[-1]), flush=True)
    finally:
        db.client.drop_database(name)
    result = {
        "bench": "job_health", "env": args.env, "at": datetime.now(UTC).isoformat(),
        "host": platform.node(), "cpus": os.cpu_count(), "load": os.getloadavg(),
        "runs": total, "repeat": args.repeat,
        "ledger_write_ms": round(write_s / max(total, 1) * 1000, 2),
        "target_ms": TARGET_MS, "points": points,
        "after_max_ms": max(p["after_ms"] for p in points),
        "met": max(p["after_ms"] for p in points) <= TARGET_MS,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
