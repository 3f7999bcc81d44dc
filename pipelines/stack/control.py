"""``stack up | down | status``: the embedded Kafka + FerretDB + Spark connector of an env."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import structlog

from pipelines.clients import cds, jars, kafka_io
from pipelines.core import files
from pipelines.core.config import Settings
from pipelines.stack.services import services

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    """Hold the env's stack lock (``flock`` on ``<stack.home>/.up.lock``, blocking): two
    ``up`` at once (two commands, parallel test workers) start each service once; the second
    waits, then finds them running."""
    with files.exclusive(settings.resolve(settings.stack.home) / ".up.lock"):
        yield


def up(settings: Settings) -> list[dict[str, object]]:
    """Provision (cached) and start every embedded service; external ones are only checked."""
    t0 = time.monotonic()
    jars.spark_kafka_jars(settings)
    jars.delta_jars(settings)
    with _one_at_a_time(settings):
        cds.ensure(settings)  # once per .venv, JDK and jars: every job's JVM starts faster
        for svc in services(settings):
            if svc.embedded:
                svc.start()
            else:
                log.info("service.external", service=svc.name, address=svc.address)
        if settings.kafka.embedded or kafka_io.ping(settings):
            kafka_io.ensure_topics(settings)
    log.info("stack.up", env=settings.env, seconds=round(time.monotonic() - t0, 1))
    return status(settings)


def down(settings: Settings) -> list[str]:
    """Stop the services this env started; return their names."""
    stopped = [svc.name for svc in reversed(services(settings)) if svc.embedded and svc.stop()]
    log.info("stack.down", env=settings.env, stopped=stopped)
    return stopped


def status(settings: Settings) -> list[dict[str, object]]:
    rows = [svc.status() for svc in services(settings)]
    found = (
        jars.spark_kafka_jars(settings) + jars.delta_jars(settings)
        if _spark_ready(settings)
        else []
    )
    rows.append(
        {
            "service": "spark",
            "state": "ready" if found else "not provisioned",
            "answers": bool(found),
            "address": settings.spark.master,
            "pid": None,
            "log": f"{len(found)} connector + Delta jars; lake {settings.lake_root}"
            + ("; class archive" if cds.archive(settings).exists() else "")
            if found
            else "run `make stack-up`",
        }
    )
    return rows


def _spark_ready(settings: Settings) -> bool:
    import pyspark

    return (settings.stack.cache / f"spark-kafka-{pyspark.__version__}" / ".complete").exists()
