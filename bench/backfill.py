"""Backfill cost curve: the real path (replay catch-up -> Kafka -> Spark -> Delta Lake ->
MongoDB) for 1, 3 and 12 months of 2013, wall time of each stage and of the whole, and the
stream's own steps (lake writes, MongoDB documents, profile). The 12-month window ends
2014-01-02T00:00Z: the last flights of 31 December land after midnight UTC.

Target: the full year, all 336,776 flights, in at most 180 s on 2 cores.

    python bench/backfill.py [--env local] [--months 1,3,12]

Each size runs on its own topics, landing folder and database, dropped afterwards. Needs the
stack of ``--env`` up (``make stack-up``). Writes ``outputs/bench/backfill.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pipelines.clients import kafka_io, mongo
from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT
from pipelines.orchestration import loader

TARGET_S = 180.0  # the full year, wall time, 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="local")
    parser.add_argument("--months", default="1,3,12",
                        help="comma-separated window sizes in months from 2013-01-01")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep each window's database (bench_<N>m...) for bench/dashboard.py "
                             "--database")  # fmt: skip
    parser.add_argument("--max-offsets", type=int, default=loader.CATCH_UP_BATCH,
                        help="events per micro-batch of the stream")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "outputs" / "bench" / "backfill.json")  # fmt: skip
    args = parser.parse_args()
    logs.configure("WARNING")
    base = config.load(args.env)
    runs = []
    for months in [int(m) for m in args.months.split(",")]:
        end = datetime(2013 + months // 12, months % 12 + 1, 1, tzinfo=UTC)
        if months >= 12:
            end = datetime(2014, 1, 2, tzinfo=UTC)
        tag = f"{months}m{uuid.uuid4().hex[:6]}"
        tmp = Path(tempfile.mkdtemp(prefix="tarmac-bench-"))
        settings = base.isolated(tag, tmp, database=f"bench_{tag}")
        t0 = time.monotonic()
        result = loader.load_window(settings, datetime(2013, 1, 1, tzinfo=UTC), end, progress=True,
                                    max_offsets_per_trigger=args.max_offsets)  # fmt: skip
        total = time.monotonic() - t0
        db = mongo.database(settings)
        runs.append({
            "months": months,
            "database": db.name if args.keep else None,
            "window": ["2013-01-01", end.date().isoformat()],
            "events": result["replay"]["sent"]["flights"],
            "weather_files": result["replay"]["sent"]["weather"],
            "flights_served": sum(d["n"] for d in db.flights_by_hour.find({}, {"n": 1})),
            "serving_documents": {c: db[c].estimated_document_count()
                                  for c in sorted(db.list_collection_names())},
            "stream_steps_seconds": result["jobs"]["flights_stream"].get("steps"),
            "stages_seconds": {
                "replay": result["replay"]["seconds"],
                **{job: r["wall_seconds"] for job, r in result["jobs"].items()},
            },
            "stream_batches": result["jobs"]["flights_stream"]["batches"],
            "total_seconds": round(total, 1),
            "target_seconds": TARGET_S if months >= 12 else None,
            "events_per_s_end_to_end": round(result["replay"]["sent"]["flights"] / total),
        })  # fmt: skip
        print(json.dumps(runs[-1]), flush=True)
        if not args.keep:
            db.client.drop_database(db.name)
        kafka_io.delete_topics(base, [t.name for t in settings.kafka.topics.values()])
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "benchmark": "backfill",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": __import__("os").cpu_count(), "python": platform.python_version()},
        "env": args.env,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
