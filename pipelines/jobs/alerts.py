"""The ``alerts`` job: evaluate the alert rules on what the page shows, keep every alert in
MongoDB and send each opening and closing to the webhook and by mail.

Run by cron every minute (``cron/tarmac.crontab``: ``python -m pipelines run alerts``, the
runner's lock, ledger and timeout like every job; ``notebooks/40_alerts.ipynb`` is its door).
One run: read the documents the rules read, by ``_id`` (``serving/alerts/inputs.py``), apply
the rules (``serving/alerts/rules.py``: the same functions the page's "Needs attention" calls,
with the thresholds of ``alerts.rules`` in ``parameters/<env>.yaml``), open / update / close
the alerts and send what is pending (``serving/alerts/store.py``, ``notify.py``). A
notification that failed every attempt is recorded on its alert, and the run then fails with
:class:`~pipelines.core.exceptions.NotificationError` (exit 15) naming it; the next run tries
again. docs/dashboard.md ("Alerts") explains each rule, how to tune it and the channels.

Measured (``bench/alerts.py --rounds 20 --runner 3``: local FerretDB, a local ``http.server``
webhook, one flight made late on the board then departed, 2 cores at load 3 to 5): from the
start of :func:`main` to the webhook's receipt of an opening p50 27 ms, p95 48 ms (a closing
p50 29 ms, p95 38 ms); a whole in-process run p50 33 ms, p95 51 ms. The way cron runs it
(``python -m pipelines run alerts``: a process, papermill, a kernel) from the command's start
to the webhook p50 5.8 s, p95 6.5 s (6 runs). Cron starts it once a minute, so an event that
breaks a rule reaches the webhook after up to 60 s of waiting plus ~6 s: the issue's target
(event -> webhook <= 10 s p95 with the stream running) needs the rules evaluated in a
long-lived service (or the job run every few seconds by one); not measured end to end with
the stream, not met by the cron job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from pipelines.core.config import Settings
from pipelines.core.exceptions import NotificationError
from pipelines.jobs import registry
from pipelines.jobs.params import AlertsParams
from pipelines.jobs.registry import Staleness
from pipelines.serving.alerts import rules, store
from pipelines.serving.alerts.inputs import read_inputs
from pipelines.stack import mongo

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
    """The registry's entry: one evaluation, the alerts synced, the notifications sent."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    db = mongo.database(settings)
    inputs = read_inputs(db, now, HEALTH_JOBS)
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
