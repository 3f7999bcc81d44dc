"""A real Spark standalone cluster (1 master, 2 workers) for the whole test session.

Import it where it is needed (``from tests.cluster_fixture import spark_cluster  # noqa: F401``) or
from ``conftest.py``. A cluster of env ``ci`` already running (``python -m pipelines cluster
up --env ci``) is reused and left running; one this session starts is stopped at the end,
also when a test or the start itself fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.core.config import Settings
from pipelines.stack.cluster import StandaloneCluster

WORKERS = 2


@pytest.fixture(scope="session")
def spark_cluster(settings: Settings) -> Iterator[str]:
    """The master URL (``spark://127.0.0.1:<port>``) of a 2-worker standalone cluster."""
    cluster = StandaloneCluster(settings, workers=WORKERS)
    running = {r["service"] for r in cluster.status() if r["state"] == "running"}
    ours = "spark-master" not in running
    try:
        yield cluster.up()
    finally:
        if ours:
            cluster.down()
