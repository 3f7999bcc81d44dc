"""A benchmark's own corner of a stack: topics, lake, landing and checkpoint folders, database
and outputs of its own, all removed when it ends (``bench/housekeeping.py``,
``bench/lake_growth.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.clients import kafka_io, mongo
from pipelines.core.config import Settings


@contextmanager
def sandbox(base: Settings, prefix: str) -> Iterator[Settings]:
    """``base`` isolated under a temporary folder (``Settings.isolated``: topics
    ``<name>.<prefix><hex>``, database ``bench_<prefix><hex>``), with ``$TARMAC_OUTPUTS_DIR``
    there too (run records and logs of the jobs it runs); its database, topics and folder
    dropped afterwards, whatever happened."""
    tag = f"{prefix}{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="tarmac-bench-"))
    os.environ["TARMAC_OUTPUTS_DIR"] = str(tmp / "outputs")
    settings = base.isolated(tag, tmp, database=f"bench_{tag}")
    try:
        yield settings
    finally:
        mongo.database(settings).client.drop_database(settings.mongo.database)
        kafka_io.delete_topics(base, [t.name for t in settings.kafka.topics.values()])
        shutil.rmtree(tmp, ignore_errors=True)
