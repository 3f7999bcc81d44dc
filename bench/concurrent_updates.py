"""Concurrent updates of one document: how many survive, on the serving database of ``--env``.

``--writers`` threads, each with its own client, send ``--updates`` upserts by ``_id`` to the
same document at once, each raising a field of its own with ``$max`` (the live board's update:
``flights.<key>.<field>``) and ``$set``-ting a shared top-level field. MongoDB applies each
update atomically, so every field arrives; FerretDB v1.24 (SQLite) applies an update as a
read, then a write, outside a transaction (FerretDB#3040), so concurrent updates of one
document overwrite each other. The figure is why each serving document has one writer
(``readmodels.HOT_OF``: the hot path writes ``*_hot`` collections; a live board micro-batch is
one task).

    python bench/concurrent_updates.py [--env ci] [--writers 3] [--updates 150]

Needs the stack of ``--env`` up (``make stack-up``). Writes
``outputs/bench/concurrent_updates.json``; its database is dropped. Measured on the embedded
FerretDB v1.24.2 (2 cores): 3 writers x 150 updates kept 160 of 450 fields, and one bulk write
failed (its reply had no ``nModified``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/...`
from bench.latency_stream import machine  # noqa: E402
from pipelines.core import config  # noqa: E402
from pipelines.core.config import REPO_ROOT  # noqa: E402


def race(uri: str, database: str, writers: int, updates: int) -> dict:
    """The race; what the document holds afterwards and the writes that failed."""
    from pymongo import MongoClient, UpdateOne

    errors: list[str] = []

    def writer(tag: int) -> None:
        with MongoClient(uri) as client:
            coll = client[database]["doc"]
            for i in range(updates):
                update = {"$set": {"top": tag}, "$max": {f"flights.w{tag}_{i}.rank": i}}
                try:
                    coll.bulk_write([UpdateOne({"_id": "bucket"}, update, upsert=True)])
                except Exception as exc:  # noqa: BLE001 - counted: a failed write is a result
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    with MongoClient(uri) as client:
        doc = client[database]["doc"].find_one({"_id": "bucket"}) or {}
        client.drop_database(database)
    return {
        "fields_sent": writers * updates,
        "fields_kept": len(doc.get("flights", {})),
        "failed_writes": len(errors),
        "first_errors": errors[:3],
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/concurrent_updates.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="ci", help="parameters/<env>.yaml (default ci)")
    parser.add_argument("--writers", type=int, default=3, help="threads at once (default 3)")
    parser.add_argument("--updates", type=int, default=150, help="updates each (default 150)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "outputs/bench/concurrent_updates.json"
    )
    args = parser.parse_args(argv)
    settings = config.load(args.env)
    database = f"bench_conc_{uuid.uuid4().hex[:8]}"
    result = {"env": args.env, "machine": machine(), "writers": args.writers,
              "updates_each": args.updates,
              **race(settings.mongo.uri, database, args.writers, args.updates)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{result['fields_kept']} of {result['fields_sent']} fields kept, "
          f"{result['failed_writes']} writes failed, {result['seconds']} s")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
