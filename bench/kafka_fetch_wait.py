"""What a small micro-batch pays to read Kafka, with Kafka's default ``fetch.max.wait.ms``
(500 ms) and with the hot path's (``flights_board.KAFKA_FETCH_WAIT_MS``).

A Structured Streaming query over a topic of its own (3 partitions) fed ``--rate`` small
records a second, trigger 1 s, ``foreachBatch`` counting its rows: the count's wall time per
micro-batch (the Kafka read and nothing else), the first ``--skip`` batches excluded. Runs
each setting ``--rounds`` times, alternating. Why it differs: Spark keeps its Kafka
consumers between micro-batches, and a consumer leaves a fetch in flight at the end of the log,
which the broker holds for ``fetch.max.wait.ms`` before the next batch's own fetch can go out
(SPARK-44012 logs "read 1 records, taking 504 ms").

    python bench/kafka_fetch_wait.py [--env ci] [--seconds 60] [--rate 20] [--rounds 1]

Needs the stack of ``--env`` up (``make stack-up``). Writes ``outputs/bench/kafka_fetch_wait.json``;
the topics and checkpoints are removed. Measured on 2 cores while the test suite ran: count
p50 0.45 / 0.38 s with the default, 0.19 / 0.23 s with 10 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/...`
from bench.latency_stream import machine, summary  # noqa: E402
from pipelines.clients.spark import build_session  # noqa: E402
from pipelines.core import config, logs  # noqa: E402
from pipelines.core.config import REPO_ROOT, Settings  # noqa: E402
from pipelines.jobs.flights_board import KAFKA_FETCH_WAIT_MS  # noqa: E402


def measure(spark: Any, settings: Settings, wait_ms: int | None, args: argparse.Namespace,
            folder: Path) -> dict[str, Any]:  # fmt: skip
    """One run of the query with ``wait_ms`` (None: Kafka's default)."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    servers = settings.kafka.bootstrap_servers
    topic = f"tarmac.bench.fetchwait.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, 3, 1)])
    producer = KafkaProducer(bootstrap_servers=servers)
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            producer.send(topic, json.dumps({"i": i}).encode())
            i += 1
            time.sleep(1 / args.rate)

    reader = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", servers)
              .option("subscribe", topic).option("startingOffsets", "latest"))  # fmt: skip
    if wait_ms is not None:
        reader = reader.option("kafka.fetch.max.wait.ms", str(wait_ms))
    counts: list[tuple[float, int]] = []

    def on_batch(frame: Any, _batch_id: int) -> None:
        t0 = time.monotonic()
        n = frame.count()
        counts.append((time.monotonic() - t0, n))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    query = (reader.load().writeStream.foreachBatch(on_batch).trigger(processingTime="1 second")
             .option("checkpointLocation", str(folder / topic)).start())  # fmt: skip
    try:
        time.sleep(args.seconds)
    finally:
        stop.set()
        query.stop()
        feeder.join(5)
        producer.close()
        admin.delete_topics([topic])
        admin.close()
    kept = counts[args.skip :]
    return {
        "fetch_max_wait_ms": wait_ms if wait_ms is not None else "default (500)",
        "count_seconds": summary([t for t, _ in kept]),
        "records_per_batch": summary([float(n) for _, n in kept], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="ci", help="parameters/<env>.yaml whose stack is used")
    parser.add_argument("--seconds", type=float, default=60.0, help="each run's length")
    parser.add_argument("--rate", type=float, default=20.0, help="records per second")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each setting")
    parser.add_argument("--skip", type=int, default=5, help="first batches excluded (warm-up)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "kafka_fetch_wait.json"
    )
    args = parser.parse_args()
    logs.configure("WARNING")
    settings = config.load(args.env)
    spark = build_session(settings, "bench-kafka-fetch-wait")
    folder = Path(tempfile.mkdtemp(prefix="tarmac-bench-fetchwait-"))
    runs = []
    try:
        for r in range(args.rounds):
            for wait_ms in (None, KAFKA_FETCH_WAIT_MS):
                run = measure(spark, settings, wait_ms, args, folder)
                c = run["count_seconds"]
                print(f"round {r + 1}: fetch.max.wait.ms {run['fetch_max_wait_ms']}: count "
                      f"p50 {c['p50']} s, p95 {c['p95']} s over {c['n']} batches")  # fmt: skip
                runs.append(run)
    finally:
        spark.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "benchmark": "kafka_fetch_wait",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
