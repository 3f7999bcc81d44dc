"""What grows and what housekeeping frees, after a small backfill (docs/operations.md).

Loads 2013-01-01 in two halves (00-12 UTC, then 12-24 UTC) through the real path (replay ->
Kafka -> Spark -> Delta -> MongoDB): the second half overwrites the dates, hours and month the
first one wrote, as the stream does all day. Then:

1. the lake's size and files, and the bytes the overwrites left unreferenced (``numRemovedBytes``
   of the Delta commits: what a VACUUM frees once they are 7 days old);
2. the ``housekeeping`` job (in-process, default parameters): nothing in the lake is 7 days
   old yet, so VACUUM frees nothing; OPTIMIZE compacts the raw tables' small files;
3. the same lake aged by 8 days (every file's mtime and every ``remove`` action's
   ``deletionTimestamp``, what a week of waiting does) and housekeeping again: what a run a
   week later frees.

    python bench/housekeeping.py [--env local]

Its own topics, folders and database, dropped afterwards; outputs under a temporary folder.
Writes ``outputs/bench/housekeeping.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT
from pipelines.jobs import registry
from pipelines.orchestration import loader

sys.path.insert(0, str(REPO_ROOT))  # the tests' Delta ageing
from bench.sandbox import sandbox  # noqa: E402
from tests import delta_age  # noqa: E402


def lake_size(root: Path) -> dict[str, int]:
    data = [p for p in root.rglob("*.parquet")]
    return {"files": len(data), "bytes": sum(p.stat().st_size for p in data)}


def unreferenced(root: Path) -> dict[str, int]:
    """Files and bytes the commits removed (tombstones: VACUUM's to free after 7 days)."""
    files = size = 0
    for commit in root.rglob("_delta_log/*.json"):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "remove" in action:
                files += 1
                size += int(action["remove"].get("size") or 0)
    return {"files": files, "bytes": size}


def age(root: Path, days: int) -> None:
    delta_age.age_table(root, datetime.now(UTC) - timedelta(days=days))


def housekeeping(settings: config.Settings, vacuum_mode: str) -> dict:
    t0 = time.monotonic()
    result = registry.run_job("housekeeping", settings, vacuum_mode=vacuum_mode)
    return {"seconds": round(time.monotonic() - t0, 1), "vacuum_mode": vacuum_mode, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="local")
    parser.add_argument(
        "--vacuum-mode",
        default="lite",
        choices=("lite", "full"),
        help="the housekeeping runs' VACUUM (default lite, the daily one)",
    )
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "outputs" / "bench" / "housekeeping.json")  # fmt: skip
    args = parser.parse_args()
    logs.configure("WARNING")
    base = config.load(args.env)
    with sandbox(base, "hk") as settings:
        root = Path(settings.lake_root)
        day = datetime(2013, 1, 1, tzinfo=UTC)
        t0 = time.monotonic()
        events = 0
        for start in (day, day + timedelta(hours=12)):
            done = loader.load_window(settings, start, start + timedelta(hours=12))
            events += done["replay"]["sent"]["flights"]
        loaded = time.monotonic() - t0
        topic = settings.kafka.topic("flights").name
        data = settings.resolve(settings.stack.home) / "kafka" / "data"
        kafka_bytes = sum(p.stat().st_size for p in data.glob(f"{topic}-*/*.log"))
        grown = {"lake": lake_size(root), "unreferenced": unreferenced(root),
                 "events": events, "topic_log_bytes": kafka_bytes,
                 "load_seconds": round(loaded, 1)}  # fmt: skip
        print(json.dumps(grown), flush=True)
        first = housekeeping(settings, args.vacuum_mode)
        print(json.dumps(first), flush=True)
        after_first = lake_size(root)
        age(root, 8)
        week = housekeeping(settings, args.vacuum_mode)
        print(json.dumps(week), flush=True)
        out = {
            "benchmark": "housekeeping",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "load": os.getloadavg()},
            "window": "2013-01-01, loaded in two halves of 12 h",
            "grown": grown,
            "housekeeping_now": first,
            "lake_after_optimize": after_first,
            "housekeeping_a_week_later": week,
            "lake_a_week_later": lake_size(root),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
        print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
