"""A real Spark standalone cluster (1 master, 2 workers) for the whole test session.

Import it where it is needed (``from tests.cluster_fixture import spark_cluster  # noqa: F401``) or
from ``conftest.py``. Like the stack, it is shared by the test workers: the first that needs it
starts it (``StandaloneCluster.up`` holds the cluster's lock), and the session's controller
stops it at the end if it was not running when the session began (``conftest``,
``pytest_sessionfinish``). No worker stops it: a worker whose tests were done took it down
while another worker's test was starting on it (seen in a clean clone's run).
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
    yield StandaloneCluster(settings, workers=WORKERS).up()
