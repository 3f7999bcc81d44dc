"""The embedded stack against real processes: status, idempotent up, crash and recovery.

The tests that kill a service do it on a stack of their own (``dedicated_stack``: Kafka and
FerretDB on free ports, started once for the module): the session's stack serves the other
test modules meanwhile (``make test`` runs modules in parallel workers)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.stack import control as stack_mod
from pipelines.stack.services import FerretDBService, KafkaService
from tests.conftest import dedicated_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack of this module's own, up for its tests and stopped at the end."""
    settings = dedicated_stack(stack, tmp_path_factory.mktemp("own-stack"), "tarmac_stack")
    stack_mod.up(settings)
    try:
        yield settings
    finally:
        stack_mod.down(settings)


def _row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["service"] == name)


def test_status_reports_every_service(stack) -> None:
    rows = stack_mod.status(stack)
    for name in ("kafka", "ferretdb"):
        row = _row(rows, name)
        assert row["state"] == "running" and row["answers"] is True
        assert row["pid"] and row["log"].endswith(f"{name}.out")
    assert _row(rows, "spark")["state"] == "ready"
    assert _row(rows, "kafka")["address"] == stack.kafka.bootstrap_servers


def test_up_twice_is_harmless_and_keeps_the_same_processes(stack) -> None:
    pids = {r["service"]: r["pid"] for r in stack_mod.status(stack)}
    t0 = time.monotonic()
    rows = stack_mod.up(stack)
    assert {r["service"]: r["pid"] for r in rows} == pids
    assert time.monotonic() - t0 < 30


def _kill(svc) -> None:
    pid = svc.pid()
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if svc.pid() is None:
            return
        time.sleep(0.1)
    raise AssertionError(f"{svc.name} still reported alive after SIGKILL")


def test_killed_ferretdb_is_reported_down_restarted_and_keeps_its_data(own, unique) -> None:
    coll = mongo.database(own)[f"persist_{unique}"]
    coll.insert_many([{"_id": i, "v": i * i} for i in range(50)])
    svc = FerretDBService(own)
    _kill(svc)
    row = _row(stack_mod.status(own), "ferretdb")
    assert row["state"] == "stopped" and row["answers"] is False
    stack_mod.up(own)
    assert _row(stack_mod.status(own), "ferretdb")["state"] == "running"
    coll = mongo.database(own)[f"persist_{unique}"]
    assert coll.count_documents({}) == 50
    assert coll.find_one({"_id": 7})["v"] == 49
    coll.drop()


def test_killed_broker_is_reported_down_and_restarted(own) -> None:
    svc = KafkaService(own)
    _kill(svc)
    row = _row(stack_mod.status(own), "kafka")
    assert row["state"] == "stopped" and row["answers"] is False
    stack_mod.up(own)
    row = _row(stack_mod.status(own), "kafka")
    assert row["state"] == "running" and row["answers"] is True


def test_port_taken_by_a_stranger_is_a_clear_error(settings, tmp_path) -> None:
    import socket

    from pipelines.core.exceptions import ServiceStartError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        fake = settings.model_copy(
            update={
                "stack": settings.stack.model_copy(update={"home": tmp_path}),
                "mongo": settings.mongo.model_copy(update={"uri": f"mongodb://127.0.0.1:{port}/"}),
            }
        )
        with pytest.raises(ServiceStartError, match="did not start"):
            FerretDBService(fake).start()
