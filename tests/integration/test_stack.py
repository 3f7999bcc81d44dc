"""The embedded stack against real processes: status, idempotent up, crash and recovery."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipelines.stack import control as stack_mod
from pipelines.stack import mongo
from pipelines.stack.services import FerretDBService, KafkaService

pytestmark = pytest.mark.integration


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


def test_killed_ferretdb_is_reported_down_restarted_and_keeps_its_data(stack, unique) -> None:
    coll = mongo.database(stack)[f"persist_{unique}"]
    coll.insert_many([{"_id": i, "v": i * i} for i in range(50)])
    svc = FerretDBService(stack)
    _kill(svc)
    row = _row(stack_mod.status(stack), "ferretdb")
    assert row["state"] == "stopped" and row["answers"] is False
    stack_mod.up(stack)
    assert _row(stack_mod.status(stack), "ferretdb")["state"] == "running"
    coll = mongo.database(stack)[f"persist_{unique}"]
    assert coll.count_documents({}) == 50
    assert coll.find_one({"_id": 7})["v"] == 49
    coll.drop()


def test_killed_broker_is_reported_down_and_restarted(stack) -> None:
    svc = KafkaService(stack)
    _kill(svc)
    row = _row(stack_mod.status(stack), "kafka")
    assert row["state"] == "stopped" and row["answers"] is False
    stack_mod.up(stack)
    row = _row(stack_mod.status(stack), "kafka")
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
