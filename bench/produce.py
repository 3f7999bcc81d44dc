"""Producer throughput: a full-year catch-up replay of flight events into the local broker, and,
in the same run, Kafka's own ProducerPerformance with the same record size and acks.

    python bench/produce.py [--env local] [--start ...] [--end ...]

Writes ``outputs/bench/produce.json``. Needs the stack of ``--env`` up (``make stack-up``).
Target for the Python producer: >= 25,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from pipelines.clients import kafka_io
from pipelines.core import config, logs
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.sources import catch_up, replay
from pipelines.stack import provision

TARGET = 25_000


def _producer_performance(settings: Settings, records: int, size: int, topic: str) -> dict:
    """Kafka's ProducerPerformance (kafka-tools jar) with the producer settings we use."""
    libs = provision.kafka_home(settings) / "libs"
    props = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "acks": "all",
        "enable.idempotence": "true",
        "compression.type": "zstd",
        "linger.ms": "100",
        "batch.size": str(1024 * 1024),
    }
    cmd = [
        "java",
        "-Xmx512m",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        *[f"{k}={v}" for k, v in props.items()],
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    last = out.strip().splitlines()[-1]
    m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency", last)
    return {
        "records": records,
        "record_size": size,
        "records_per_s": float(m[1]) if m else None,
        "mb_per_s": float(m[2]) if m else None,
        "avg_latency_ms": float(m[3]) if m else None,
        "raw": last,
        "producer_props": props,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env", default="local")
    parser.add_argument("--start", default="2013-01-01T00:00:00Z")
    parser.add_argument("--end", default="2014-01-01T00:00:00Z")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "produce.json"
    )
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="comma-separated producer process counts to measure (default 1,2)",
    )
    args = parser.parse_args()
    logs.configure("WARNING")
    base = config.load(args.env)
    tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    producers = {}
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            settings = base.isolated(f"bench{tag}w{workers}", Path(tmp))
            run = replay.make(
                settings, "flights", progress=True, start=args.start, end=args.end, catch_up=True
            )
            t0 = time.monotonic()
            stats = catch_up.run_parallel(run, workers, from_scratch=True)
            wall = time.monotonic() - t0
        kafka_io.delete_topics(base, [t.name for t in settings.kafka.topics.values()])
        producers[f"{workers}_worker{'s' if workers > 1 else ''}"] = {
            "workers": workers,
            "events": stats.sent["flights"],
            "dead_lettered": stats.dead_lettered,
            "send_seconds": round(stats.seconds, 2),
            "events_per_s": round(stats.rate),
            "derive_seconds": round(stats.prepare_seconds, 2),
            "wall_seconds_incl_derivation": round(wall, 2),
            "target_events_per_s": TARGET,
            "meets_target": stats.rate >= TARGET,
        }
    day = replay.flight_events(
        run.options.start,
        run.options.start + timedelta(days=1),
        timedelta(minutes=run.options.board_lead_minutes),
    )
    sizes = [
        len(orjson.dumps({**m, "produced_at": "2026-01-01T00:00:00Z"}))
        for m in replay.events.iter_messages(day)
    ]
    size = round(sum(sizes) / len(sizes))
    perf_topic = f"bench.{tag}.producer-performance"
    kafka_io.create_topic(base, perf_topic, partitions=base.kafka.topic("flights").partitions)
    perf = _producer_performance(base, stats.sent["flights"], size, perf_topic)
    kafka_io.delete_topics(base, [perf_topic])
    best = max(producers.values(), key=lambda p: p["events_per_s"])

    result = {
        "benchmark": "produce",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": __import__("os").cpu_count(), "python": platform.python_version()},
        "window": [args.start, args.end],
        "python_producer": producers,
        "kafka_producer_performance": perf,
        "ratio_best_python_to_java": round(best["events_per_s"] / perf["records_per_s"], 3)
        if perf["records_per_s"]
        else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
