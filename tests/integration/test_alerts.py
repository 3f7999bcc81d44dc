"""The ``alerts`` job on the real serving database, against a real local SMTP server
(``aiosmtpd``) and a real local HTTP server (``http.server`` in a thread), both on free ports:
an alert opens once, is updated while it lasts, closes when it clears; one webhook call and
one mail per transition, none on a rerun; a failed webhook is recorded on the alert and sent
by the next run; a run killed between a send and its record sends again with the same
idempotency key; acknowledge records who and when. Both servers are stopped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from pipelines.clients import mongo
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.core.exceptions import AlertError, NotificationError
from pipelines.jobs import registry
from pipelines.orchestration import service
from pipelines.orchestration.ledger import Ledger
from pipelines.serving import readmodels as RM
from pipelines.serving.alerts import store
from pipelines.stack.ports import free_port
from tests.conftest import write_parameters

pytestmark = pytest.mark.integration

CLOCK = datetime(2013, 1, 8, 15, 0)  # the replay clock (naive UTC, as stored)
HOUR = datetime(2013, 1, 8, 14, 0)


class Hook:
    """A webhook receiver: records each POST (headers, JSON); answers ``fail`` 500s first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok = hook.fail <= 0
                hook.fail -= 1
                hook.calls.append({"ok": ok, "key": self.headers["Idempotency-Key"],
                                   "body": body})  # fmt: skip
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[str, str]]:
        return [(c["body"]["event"], c["key"]) for c in self.calls if c["ok"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class Mailbox:
    """aiosmtpd's handler: keeps every message's envelope and headers."""

    def __init__(self) -> None:
        self.mails: list[dict[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)  # headers unfolded
        self.mails.append({"to": ",".join(envelope.rcpt_tos), "subject": msg["Subject"],
                           "key": msg["X-Tarmac-Idempotency-Key"]})  # fmt: skip
        return "250 OK"


@pytest.fixture
def channels(stack: Settings, unique: str) -> Iterator[tuple[Settings, Hook, Mailbox]]:
    hook, box = Hook(), Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    alerts = stack.alerts.model_copy(update={
        "webhook": stack.alerts.webhook.model_copy(update={"url": hook.url, "backoff_s": 0.0}),
        "email": stack.alerts.email.model_copy(update={
            "host": "127.0.0.1", "port": smtp.port, "to": ["duty@ewr.example"],
            "backoff_s": 0.0}),
    })  # fmt: skip
    settings = stack.model_copy(update={
        "alerts": alerts,
        "mongo": stack.mongo.model_copy(update={"database": f"tarmac_alerts_{unique}"}),
    })  # fmt: skip
    try:
        yield settings, hook, box
    finally:
        smtp.stop()
        hook.stop()
        mongo.database(settings).client.drop_database(settings.mongo.database)


def serve(db: Any, rank: int, late_min: int, dep_delay: int | None = None) -> None:
    """The stream's state (fresh, the clock) and one EWR flight scheduled ``late_min`` before
    the clock, in its hour's board bucket (the lake path's)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    batch = {"batch_id": 1, "at": now, "rows": 1, "lag": 0, "seconds": 0.1}
    db[RM.STATE].replace_one({"_id": "flights_stream"}, {
        "newest_event_time": CLOCK, "updated_at": now, "hot": batch, "lake": batch,
    }, upsert=True)  # fmt: skip
    sched = CLOCK - timedelta(minutes=late_min)
    f = {
        "flight_key": "2013-01-08|UA|1545|EWR|0915",
        "carrier": "UA",
        "flight": 1545,
        "sched_dep_utc": sched,
        "status_rank": rank,
        "status": {1: "scheduled"}.get(rank, "departed"),
    }
    if dep_delay is not None:
        f["dep_delay"] = dep_delay
    key = RM.hour_key("EWR", HOUR)
    db[RM.BOARD].replace_one({"_id": key}, {"origin": "EWR", "hour_utc": HOUR, "date": "2013-01-08",
                                            "n": 1, "flights": [f], "version": 10 + rank},
                             upsert=True)  # fmt: skip


def run(settings: Settings) -> dict[str, Any]:
    return registry.run_job("alerts", settings)


def test_an_alert_opens_once_is_updated_closes_and_is_sent_once_per_transition(channels) -> None:
    settings, hook, box = channels
    db = mongo.database(settings)
    serve(db, rank=1, late_min=30)
    first = run(settings)
    aid = "not_departed:EWR#1"
    assert (first["opened"], first["updated"], first["closed"], first["sent"]) == (1, 0, 0, 2)
    assert first["alerts"] == ["not_departed:EWR"]
    doc = store.read_alert(db, aid)
    assert doc["status"] == "open" and doc["severity"] == "amber" and doc["closed_at"] is None
    assert doc["facts"]["max_late_min"] == 30
    assert {c: s["status"] for c, s in doc["notifications"]["open"].items()} == {
        "webhook": "sent", "email": "sent"}  # fmt: skip
    assert hook.received() == [("open", f"{aid}:open")]
    assert hook.calls[0]["body"]["alert"]["message"].startswith("EWR: 1 flight(s) past")
    assert box.mails == [
        {
            "to": "duty@ewr.example",
            "key": f"{aid}:open",
            "subject": f"[Tarmac {settings.env}] OPEN amber: {doc['message']}",
        }
    ]

    # it lasts, and gets worse: updated, not opened again, nothing sent
    serve(db, rank=1, late_min=50)
    again = run(settings)
    assert (again["opened"], again["updated"], again["sent"]) == (0, 1, 0)
    doc2 = store.read_alert(db, aid)
    assert doc2["severity"] == "red" and doc2["facts"]["max_late_min"] == 50
    assert doc2["opened_at"] == doc["opened_at"] and doc2["last_seen"] > doc["last_seen"]
    assert len(hook.calls) == 1 and len(box.mails) == 1

    # acknowledged from the page: who and when, the first one wins
    at = datetime(2026, 1, 5, 12, 0)
    assert store.acknowledge(db, aid, "duty@ewr", at) == {"_id": aid, "by": "duty@ewr", "at": at}
    assert store.acknowledge(db, aid, "someone else")["by"] == "duty@ewr"
    stored = {"by": "duty@ewr", "at": at.replace(tzinfo=UTC)}  # the client reads aware UTC
    assert store.read_alert(db, aid)["acknowledged"] == stored
    with pytest.raises(AlertError, match="no alert 'nope#1'"):
        store.acknowledge(db, "nope#1", "duty@ewr")
    run(settings)
    assert db[store.ALERTS].find_one({"_id": aid})["acknowledged"] == stored

    # it clears: closed, the closing sent once; a rerun sends nothing
    serve(db, rank=2, late_min=50, dep_delay=45)
    closed = run(settings)
    assert (closed["opened"], closed["closed"], closed["sent"]) == (0, 1, 2)
    doc3 = store.read_alert(db, aid)
    assert doc3["status"] == "closed" and doc3["closed_at"] is not None
    assert hook.received() == [("open", f"{aid}:open"), ("close", f"{aid}:close")]
    assert [m["key"] for m in box.mails] == [f"{aid}:open", f"{aid}:close"]
    assert run(settings)["sent"] == 0 and len(hook.calls) == 2 and len(box.mails) == 2
    assert store.open_alerts(db) == []

    # the condition comes back: a new alert of the same key
    serve(db, rank=1, late_min=30)
    assert run(settings)["opened"] == 1
    assert [d["_id"] for d in store.open_alerts(db)] == ["not_departed:EWR#2"]


def test_a_failed_webhook_is_recorded_and_sent_by_the_next_run(channels) -> None:
    settings, hook, box = channels
    db = mongo.database(settings)
    serve(db, rank=1, late_min=30)
    hook.fail = 3  # every attempt of the first run
    with pytest.raises(NotificationError, match="HTTP 500"):
        run(settings)
    aid = "not_departed:EWR#1"
    doc = store.read_alert(db, aid)  # the alert is kept
    webhook = doc["notifications"]["open"]["webhook"]
    assert (webhook["status"], webhook["attempts"]) == ("failed", 3)
    assert "HTTP 500" in webhook["error"]
    assert doc["notifications"]["open"]["email"]["status"] == "sent" and len(box.mails) == 1
    nxt = run(settings)
    assert nxt["sent"] == 1 and hook.received() == [("open", f"{aid}:open")]
    assert store.read_alert(db, aid)["notifications"]["open"]["webhook"]["attempts"] == 4
    assert len(box.mails) == 1


def test_a_run_killed_between_send_and_record_sends_again_with_the_same_key(channels) -> None:
    """What a run killed right after the POST leaves: ``sending`` on the alert, its id in the
    outbox. The next run sends again (at least once), with the same idempotency key."""
    settings, hook, box = channels
    db = mongo.database(settings)
    serve(db, rank=1, late_min=30)
    run(settings)
    aid = "not_departed:EWR#1"
    doc = db[store.ALERTS].find_one({"_id": aid})
    doc["notifications"]["open"]["webhook"]["status"] = "sending"  # the state of that kill
    db[store.ALERTS].replace_one({"_id": aid}, doc)
    index = db[RM.STATE].find_one({"_id": store.INDEX_ID})
    db[RM.STATE].update_one({"_id": store.INDEX_ID}, {"$set": {"outbox": [aid]}})
    assert index["open"] == [{"key": "not_departed:EWR", "id": aid}]
    assert run(settings)["sent"] == 1
    assert hook.received() == [("open", f"{aid}:open"), ("open", f"{aid}:open")]
    assert len(box.mails) == 1  # the mail was recorded sent: not again


def test_the_alerts_service_evaluates_every_few_seconds_and_stops_clean(
    channels, tmp_path: Path
) -> None:
    """``service start alerts`` (the registry's ``every_s=5``, here 1 s): a flight made late
    while it runs reaches the webhook within a round or two; ``service stop`` ends it (SIGTERM,
    its Ctrl-C) and leaves no process; its ledger says stopped."""
    settings, hook, _ = channels
    params, root = tmp_path / "params", tmp_path / "outputs"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params), "TARMAC_OUTPUTS_DIR": str(root)}

    def cli(action: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pipelines", "service", action, "alerts",
               "--env", settings.env, *extra]  # fmt: skip
        return subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    paths = service.paths(settings.env, "alerts", root)
    try:
        started = cli("start", "-p", "every_s=1")
        assert started.returncode == 0, started.stderr
        db = mongo.database(settings)
        serve(db, rank=1, late_min=30)
        made_late = time.monotonic()
        while not hook.received() and time.monotonic() - made_late < 60:
            time.sleep(0.1)
        assert hook.received() == [("open", "not_departed:EWR#1:open")], service.tail(paths.log)
        print(f"alerts service: flight late -> webhook {time.monotonic() - made_late:.1f} s")
        stopped = cli("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not service.leftovers(paths.tag)
        runs = Ledger(settings, root / "logs").recent("alerts")
        assert [r["status"] for r in runs] == ["stopped"], runs
    finally:
        cli("stop")
        service.kill_all(paths.tag)
