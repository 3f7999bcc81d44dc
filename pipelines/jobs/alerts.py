"""The ``alerts`` job: evaluate the alert rules on what the page shows, keep every alert in
MongoDB and send each opening and closing to the webhook and by mail.

A long-lived service (``tarmac service start alerts``; cron keeps its watchdog,
``service ensure alerts``; compose a service of its own) evaluating every 5 s (``-p every_s=5``,
its ``ServiceSpec``); ``tarmac run alerts`` evaluates once (the runner's lock,
ledger and timeout like every job; ``notebooks/40_alerts.ipynb`` is its door). One evaluation:
read the documents the rules read, by ``_id`` (``serving/alerts/inputs.py``), apply the rules
(``serving/alerts/rules.py``: the same functions the page's "Needs attention" calls, with the
thresholds of ``alerts.rules`` in ``parameters/<env>.yaml``), open / update / close the alerts
and send what is pending (``serving/alerts/store.py``, ``notify.py``). A notification that
failed every attempt is recorded on its alert, and the run then fails with
:class:`~pipelines.core.exceptions.NotificationError` (exit 15) naming it; the next run tries
again. docs/dashboard.md ("Alerts") explains each rule, how to tune it and the channels.

Measured (``bench/alerts.py --rounds 20 --runner 3``: local FerretDB, a local ``http.server``
webhook, one flight made late on the board then departed, 2 cores at load 3 to 5): from the
start of :func:`main` to the webhook's receipt of an opening p50 27 ms, p95 48 ms (a closing
p50 29 ms, p95 38 ms); a whole in-process run p50 33 ms, p95 51 ms. The way cron runs it
(``tarmac run alerts``: a process, papermill, a kernel) from the command's start
to the webhook p50 5.8 s, p95 6.5 s (6 runs). Hence the service: once the stream has put an
event on its board bucket, a rule it breaks reaches the webhook within one round (5 s) plus
~50 ms; a cron job once a minute would take up to 66 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.core.exceptions import NotificationError
from pipelines.jobs import registry
from pipelines.jobs.params import AlertsParams
from pipelines.jobs.registry import Staleness
from pipelines.serving.alerts import rules, store
from pipelines.serving.alerts.inputs import Kept, read_inputs

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Freshness:
    """A data job's freshness limits as the ``stale_source`` rule reads them."""

    wall: Staleness
    replay: Staleness | None


def sources() -> dict[str, Freshness]:
    """The data jobs' freshness limits (the registry's ``stale_wall`` / ``stale_replay``: what
    the page's pills use)."""
    out = {}
    for name in registry.PIPELINE:
        spec = registry.JOBS[name]
        if spec.stale_wall is not None:
            out[name] = Freshness(spec.stale_wall, spec.stale_replay)
    return out


HEALTH_JOBS = tuple(reversed(registry.PIPELINE))  # the jobs the page's pills show


def main(settings: Settings, params: AlertsParams) -> dict[str, Any]:
    """The registry's entry: one evaluation (:func:`once`), or with ``every_s`` one every
    ``every_s`` seconds until stopped (Ctrl-C, SIGTERM from the service's supervisor): the
    long-lived service. A round whose notifications failed is logged and the next round tries
    again (the failures are recorded on the alerts); the service keeps running."""
    if params.every_s is None:
        return once(settings, params)
    totals: dict[str, Any] = {"rounds": 0, "failed_rounds": 0}
    kept = Kept()  # the documents read again only when they may have moved (inputs.Kept)
    try:
        while True:
            started = time.monotonic()
            try:
                result = once(settings, params, kept)
                for key in ("opened", "updated", "closed", "sent"):
                    totals[key] = totals.get(key, 0) + result[key]
            except NotificationError as exc:
                totals["failed_rounds"] += 1
                log.warning("alerts.round_failed", error=str(exc)[:300])
            totals["rounds"] += 1
            time.sleep(max(0.0, params.every_s - (time.monotonic() - started)))
    except KeyboardInterrupt:  # the service's stop: the round under way finished or not begun
        log.info("alerts.stopped", **totals)
    return {"rows_in": 0, "accepted": 0, "rejected": 0, **totals}


def once(settings: Settings, params: AlertsParams, kept: Kept | None = None) -> dict[str, Any]:
    """One evaluation: the rules over the documents they read (``kept``: a long-lived
    service's, read again only when they may have moved), the alerts synced, the
    notifications sent."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    db = mongo.database(settings)
    inputs = read_inputs(db, now, HEALTH_JOBS, kept)
    found = rules.evaluate(inputs, settings.alerts.rules, sources())
    result = store.sync(
        db, found, now, settings.alerts, settings.env, inputs.clock, send=params.notify
    )
    seconds = time.perf_counter() - started
    print(
        f"alerts: {len(found)} found · opened {len(result.opened)} · updated "
        f"{len(result.updated)} · closed {len(result.closed)} · notifications sent "
        f"{len(result.sent)}, failed {len(result.failed)}  {seconds:.2f} s",
        flush=True,
    )
    log.info("alerts.run", found=len(found), opened=len(result.opened),
             closed=len(result.closed), sent=len(result.sent), failed=len(result.failed),
             seconds=round(seconds, 3))  # fmt: skip
    if result.failed:
        raise NotificationError(
            f"{len(result.failed)} notification(s) failed every attempt: "
            f"{'; '.join(result.failed[:3])}. The alerts are kept and the failures recorded on "
            "them; the next run tries again. Check alerts.webhook / alerts.email in "
            f"parameters/{settings.env}.yaml and that the receiver is up."
        )
    return {
        "rows_in": len(found),
        "accepted": len(found),
        "rejected": 0,
        "opened": len(result.opened),
        "updated": len(result.updated),
        "closed": len(result.closed),
        "sent": len(result.sent),
        "seconds": round(seconds, 3),
        "first_send_s": None if result.first_send_s is None else round(result.first_send_s, 3),
        "alerts": [c.key for c in found],
    }
