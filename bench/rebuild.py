"""Rebuild cost curve: ``python -m pipelines rebuild`` (:mod:`pipelines.jobs.rebuild`) of 1, 3
and 12 months of 2013 from a lake loaded through the real path, wall time of each size and of
each step, and whether every document came back identical.

Target (issue 22): the full year rebuilt from the raw lake in at most 90 s on 2 cores.

    python bench/rebuild.py [--env local] [--months 1,3,12] [--by month,quarter]
                            [--keep | --reuse DIR]

The year (or the largest size asked) is loaded once (``loader.load_window``: replay catch-up,
Kafka, Spark, Delta Lake, MongoDB; ~15 min for the year), on its own topics, landing folder and
database; ``--keep`` leaves them (their folder is printed) and ``--reuse DIR`` starts from such a
folder instead of loading. Each size then runs the rebuild job in this process (``restart``: a
fresh rebuild each time; the JVM started once, as a long job would), and the documents of every
serving collection are compared with those the load wrote, ``updated_at`` aside. Writes
``outputs/bench/rebuild.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from pipelines.clients import kafka_io, mongo
from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT
from pipelines.jobs import rebuild
from pipelines.orchestration import loader

TARGET_S = 90.0  # the full year, wall time, 2 cores
SERVING = ["flights_by_hour", "kpi_hourly", "kpi_daily", "kpi_route_monthly", "kpi_profile",
           "weather_hourly"]  # fmt: skip


def _documents(db) -> dict[str, list[dict]]:
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "updated_at"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return {c: sorted((strip(d) for d in db[c].find({})), key=lambda d: str(d["_id"]))
            for c in SERVING}  # fmt: skip


def _end(months: int) -> datetime:
    """The window's end: the first of the next month; the year's ends 2014-01-02T00:00Z (the
    last flights of 31 December land after midnight UTC)."""
    if months >= 12:
        return datetime(2014, 1, 2, tzinfo=UTC)
    return datetime(2013 + months // 12, months % 12 + 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="local")
    parser.add_argument("--months", default="1,3,12", help="rebuilt sizes, from 2013-01-01")
    parser.add_argument("--by", default="quarter",
                        help="chunk sizes timed on each size: month, quarter, year")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the loaded lake and database")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a folder a --keep run left: rebuild it, load nothing")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "outputs" / "bench" / "rebuild.json")  # fmt: skip
    args = parser.parse_args()
    logs.configure("WARNING")
    base = config.load(args.env)
    sizes = sorted(int(m) for m in args.months.split(","))
    folder = args.reuse or Path(f"/tmp/tarmac-bench-rebuild-{uuid.uuid4().hex[:6]}")
    tag = folder.name.rsplit("-", 1)[-1]
    settings = base.isolated(tag, folder, database=f"bench_rebuild_{tag}")
    load = None
    if args.reuse is None:
        t0 = time.monotonic()
        result = loader.load_window(settings, datetime(2013, 1, 1, tzinfo=UTC),
                                      _end(sizes[-1]), progress=True)  # fmt: skip
        load = {"seconds": round(time.monotonic() - t0, 1),
                "events": result["replay"]["sent"]["flights"]}  # fmt: skip
        print(json.dumps({"load": load}), flush=True)
    db = mongo.database(settings)
    loaded = _documents(db)
    runs = []
    for months, by in [(m, b) for m in sizes for b in args.by.split(",")]:
        last = date.fromordinal(_end(months).date().toordinal() - 1)
        last = min(last, date(2013, 12, 31))
        t0 = time.monotonic()
        done = rebuild.run(settings, date(2013, 1, 1), last, restart=True, progress=True, by=by)
        wall = time.monotonic() - t0
        same = _documents(db) == loaded
        runs.append({
            "months": months, "by": by, "dates": done["dates"], "chunks": done["chunks"],
            "steps_seconds": done["steps"], "job_seconds": done["seconds"],
            "wall_seconds": round(wall, 1), "documents_identical": same,
            "target_seconds": TARGET_S if months >= 12 else None,
        })  # fmt: skip
        print(json.dumps(runs[-1]), flush=True)
    if args.keep or args.reuse:
        print(f"kept: python bench/rebuild.py --env {args.env} --reuse {folder}")
    else:
        db.client.drop_database(db.name)
        kafka_io.delete_topics(base, [t.name for t in settings.kafka.topics.values()])
        shutil.rmtree(folder, ignore_errors=True)
    out = {
        "benchmark": "rebuild",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },  # fmt: skip
        "env": args.env,
        "load": load,
        "documents": {c: len(v) for c, v in loaded.items()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
