"""Every alert kept in MongoDB: opened once, updated while it lasts, closed when it clears,
its notifications recorded on it, acknowledged by a person.

Documents (FerretDB v1.24: every read and write by ``_id``, each document one writer):

- ``alerts``: one document per alert, ``_id`` = ``<rule>:<subject>#<n>`` (:func:`alert_id`:
  the key and the n-th time that key opened), written only by the ``alerts`` job::

      {"_id": "not_departed:EWR#3", "key": "not_departed:EWR", "rule": "not_departed",
       "subject": "EWR", "severity": "red", "peak_severity": "red", "message": "...",
       "action": "...", "facts": {...}, "status": "open" | "closed",
       "opened_at", "last_seen", "closed_at" (None while open), "opened_clock", "last_clock",
       "acknowledged": {"by", "at"} (once acknowledged, copied from alert_acks),
       "notifications": {"open": {"webhook": {"status", "attempts", "sending_at",
                                              "sent_at", "error"}, "email": {...}},
                         "close": {...}}}

- ``alert_acks``: ``{_id: <alert id>, by, at}``, written by :func:`acknowledge` (the page):
  a second writer of the alert document could lose the job's update (FerretDB#3040), so the
  acknowledgement has its own document; the job copies it into the alert at its next run and
  :func:`read_alert` joins both.
- ``pipeline_state._id = "alerts"``: the job's index (``open``: key -> id of the open alerts,
  ``seq``: the last ``n`` of each key, ``outbox``: ids with a notification not sent yet): what
  the job reads instead of a filter on ``alerts`` (which FerretDB answers by a scan).

Crash safety (the job is killed at any point; cron runs it again a minute later): the alert
documents are written before the index, and an alert's ``_id`` is computed from the index, so
a rerun finds the alert a killed run opened (same ``_id``, its ``opened_at`` kept) instead of
opening it twice. A notification is marked ``sending`` before it is sent and ``sent`` after:
a run killed between the two leaves ``sending``, and the next run sends it again. So each
transition is sent at least once, and twice only if a run is killed in that window; every
payload carries the idempotency key ``<alert id>:<event>`` for a receiver to drop the second.
A send that failed every attempt of a run is recorded (``failed``, the error, the attempts)
and tried again by the next runs, until ``alerts.give_up_after`` attempts (``abandoned``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from pipelines.core.config import AlertSettings
from pipelines.core.exceptions import AlertError
from pipelines.serving.readmodels import STATE

from . import notify
from .rules import Candidate

ALERTS = "alerts"
ACKS = "alert_acks"
INDEX_ID = "alerts"  # the job's document in pipeline_state
CHANNELS = ("webhook", "email")
EVENTS = ("open", "close")
UNSENT = ("pending", "sending", "failed")
_RANK = {"amber": 1, "red": 2}


def alert_id(key: str, n: int) -> str:
    """The ``_id`` of the ``n``-th opening of ``key``."""
    return f"{key}#{n}"


def _naive(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


@dataclass
class Index:
    """The job's index of the ``alerts`` collection (``pipeline_state._id = "alerts"``)."""

    open: dict[str, str] = field(default_factory=dict)  # key -> open alert's id
    seq: dict[str, int] = field(default_factory=dict)  # key -> last n opened
    outbox: list[str] = field(default_factory=list)  # ids with a notification to send

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> Index:
        doc = doc or {}
        return cls(
            {o["key"]: o["id"] for o in doc.get("open") or []},
            {s["key"]: int(s["n"]) for s in doc.get("seq") or []},
            list(doc.get("outbox") or []),
        )

    def doc(self, now: datetime, **extra: Any) -> dict[str, Any]:
        # keys hold ':' and '|': kept as values, never as field names
        return {
            "_id": INDEX_ID,
            "open": [{"key": k, "id": v} for k, v in sorted(self.open.items())],
            "seq": [{"key": k, "n": n} for k, n in sorted(self.seq.items())],
            "outbox": sorted(set(self.outbox)),
            "updated_at": _naive(now),
            **extra,
        }


@dataclass(frozen=True)
class Plan:
    """What a run does (pure, :func:`plan`): alerts to open (with their new ids), to update,
    to close."""

    opened: list[tuple[Candidate, str]]
    kept: list[tuple[Candidate, str]]
    closed: list[str]


def plan(index: Index, candidates: Iterable[Candidate]) -> Plan:
    found = {c.key: c for c in candidates}
    opened, kept = [], []
    for key, cand in found.items():
        if key in index.open:
            kept.append((cand, index.open[key]))
        else:
            opened.append((cand, alert_id(key, index.seq.get(key, 0) + 1)))
    closed = [aid for key, aid in index.open.items() if key not in found]
    return Plan(opened, kept, closed)


def channels(alerts: AlertSettings) -> list[str]:
    """The channels configured: a webhook URL, an SMTP host with recipients."""
    out = []
    if alerts.webhook.url:
        out.append("webhook")
    if alerts.email.host and alerts.email.to:
        out.append("email")
    return out


@dataclass
class SyncResult:
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # "<id>:<event>:<channel>"
    failed: list[str] = field(default_factory=list)  # "<id>:<event>:<channel>: <error>"
    first_send_s: float | None = None  # from the start of sync() to the first send's return


def _fold(doc: dict[str, Any], cand: Candidate, now: datetime, clock: datetime | None) -> None:
    doc.update(
        severity=cand.severity, message=cand.message, action=cand.action, facts=dict(cand.facts),
        last_seen=now, last_clock=clock,
        peak_severity=max(doc.get("peak_severity") or cand.severity, cand.severity,
                          key=lambda s: _RANK.get(s, 0)),
    )  # fmt: skip


def _new(cand: Candidate, aid: str, now: datetime, clock: datetime | None, chans: list[str]):
    doc = {
        "_id": aid,
        "key": cand.key,
        "rule": cand.rule,
        "subject": cand.subject,
        "status": "open",
        "opened_at": now,
        "closed_at": None,
        "opened_clock": clock,
        "notifications": {"open": {c: {"status": "pending", "attempts": 0} for c in chans}},
    }
    _fold(doc, cand, now, clock)  # fmt: skip
    return doc


def sync(
    db: Database,
    candidates: Iterable[Candidate],
    now: datetime,
    alerts: AlertSettings,
    env: str,
    clock: datetime | None = None,
    send: bool = True,
) -> SyncResult:
    """Open, update and close the alerts of ``candidates`` (what the rules found at ``now``),
    then send their pending notifications (unless ``send`` is false: they wait in the outbox)."""
    started = time.perf_counter()
    now, clock = _naive(now), (_naive(clock) if clock else None)
    coll, result = db[ALERTS], SyncResult()
    index = Index.of(db[STATE].find_one({"_id": INDEX_ID}))
    todo = plan(index, candidates)
    chans = channels(alerts)
    for cand, aid in todo.opened + todo.kept:
        doc = coll.find_one({"_id": aid})
        if doc is not None and doc.get("closed_at") is not None:  # closed by a killed run
            n = max(index.seq.get(cand.key, 0), int(aid.rsplit("#", 1)[1])) + 1
            aid, doc = alert_id(cand.key, n), None
        if doc is None:
            doc = _new(cand, aid, now, clock, chans)
            result.opened.append(aid)
        else:  # open: the condition lasts (or a killed run opened it: same _id, same alert)
            _fold(doc, cand, now, clock)
            result.updated.append(aid)
        if (ack := db[ACKS].find_one({"_id": aid})) is not None:
            doc["acknowledged"] = {"by": ack.get("by"), "at": ack.get("at")}
        coll.replace_one({"_id": aid}, doc, upsert=True)
        index.open[cand.key] = aid
        index.seq[cand.key] = max(index.seq.get(cand.key, 0), int(aid.rsplit("#", 1)[1]))
        if _unsent(doc):
            index.outbox.append(aid)
    for aid in todo.closed:
        doc = coll.find_one({"_id": aid})
        if doc is not None and doc.get("closed_at") is None:
            doc.update(status="closed", closed_at=now)
            if alerts.notify_close:
                doc.setdefault("notifications", {})["close"] = {
                    c: {"status": "pending", "attempts": 0} for c in chans
                }
            coll.replace_one({"_id": aid}, doc)
            result.closed.append(aid)
            if _unsent(doc):
                index.outbox.append(aid)
        index.open = {k: v for k, v in index.open.items() if v != aid}
    db[STATE].replace_one({"_id": INDEX_ID}, index.doc(now, clock=clock), upsert=True)
    if send:
        deliver(db, index, alerts, env, result, started)
        db[STATE].replace_one({"_id": INDEX_ID}, index.doc(now, clock=clock), upsert=True)
    return result


def _unsent(doc: Mapping[str, Any]) -> bool:
    return any(
        st.get("status") in UNSENT
        for ev in (doc.get("notifications") or {}).values()
        for st in ev.values()
    )


def deliver(
    db: Database, index: Index, alerts: AlertSettings, env: str, result: SyncResult,
    started: float, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:  # fmt: skip
    """Send every unsent notification of the outbox's alerts, open before close; record
    ``sending`` before and ``sent`` / ``failed`` / ``abandoned`` after each; the outbox keeps
    the alerts with a notification still to send."""
    coll, left = db[ALERTS], []
    for aid in dict.fromkeys(index.outbox):
        doc = coll.find_one({"_id": aid})
        if doc is None:
            continue
        for event in EVENTS:
            for chan, st in ((doc.get("notifications") or {}).get(event) or {}).items():
                if st.get("status") not in UNSENT:
                    continue
                st.update(status="sending", sending_at=_naive(clock()))
                coll.replace_one({"_id": aid}, doc)
                outcome = _send(chan, doc, event, env, alerts)
                if result.first_send_s is None:
                    result.first_send_s = time.perf_counter() - started
                st["attempts"] = int(st.get("attempts") or 0) + outcome.attempts
                tag = f"{aid}:{event}:{chan}"
                if outcome.ok:
                    st.update(status="sent", sent_at=_naive(clock()), error=None)
                    result.sent.append(tag)
                else:
                    gone = st["attempts"] >= alerts.give_up_after
                    st.update(status="abandoned" if gone else "failed", error=outcome.error,
                              failed_at=_naive(clock()))  # fmt: skip
                    result.failed.append(f"{tag}: {outcome.error}")
                coll.replace_one({"_id": aid}, doc)
        if _unsent(doc):
            left.append(aid)
    index.outbox = left


def _send(chan: str, doc: Mapping[str, Any], event: str, env: str, alerts: AlertSettings):
    if chan == "webhook" and alerts.webhook.url:
        return notify.post(alerts.webhook, notify.payload(doc, event, env))
    if chan == "email" and alerts.email.host and alerts.email.to:
        return notify.mail(alerts.email, notify.message(doc, event, env, alerts.email))
    return notify.Outcome(False, 0, f"{chan} is no longer configured (alerts.{chan})")


# --------------------------------------------------------------------------- the readers


def read_alert(db: Database, aid: str) -> dict[str, Any] | None:
    """An alert by ``_id``, with its acknowledgement (``alert_acks``) when the job has not
    copied it yet."""
    doc = db[ALERTS].find_one({"_id": aid})
    if (
        doc is not None
        and "acknowledged" not in doc
        and (ack := db[ACKS].find_one({"_id": aid})) is not None
    ):
        doc["acknowledged"] = {"by": ack.get("by"), "at": ack.get("at")}
    return doc


def open_alerts(db: Database) -> list[dict[str, Any]]:
    """The open alerts (the index's, each read by ``_id``), red first."""
    index = Index.of(db[STATE].find_one({"_id": INDEX_ID}))
    docs = [d for aid in index.open.values() if (d := read_alert(db, aid)) is not None]
    return sorted(docs, key=lambda d: (-_RANK.get(d.get("severity"), 0), d["_id"]))


def acknowledge(db: Database, aid: str, who: str, now: datetime | None = None) -> dict[str, Any]:
    """Record that ``who`` acknowledged alert ``aid`` (at ``now``, the wall clock by default):
    the first acknowledgement wins, a second one returns the first. Raises :class:`AlertError`
    for an unknown alert or an empty name."""
    who = (who or "").strip()
    if not who:
        raise AlertError("acknowledge needs who: a name or an e-mail address")
    if db[ALERTS].find_one({"_id": aid}, {"_id": 1}) is None:
        known = [d["_id"] for d in open_alerts(db)][:10]
        raise AlertError(f"no alert {aid!r} in the alerts collection; open ones: {known}")
    ack = {"_id": aid, "by": who, "at": _naive(now or datetime.now(UTC))}
    try:
        db[ACKS].insert_one(ack)
    except DuplicateKeyError:
        return db[ACKS].find_one({"_id": aid}) or ack
    return ack
