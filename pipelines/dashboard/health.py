"""Freshness of the sources, health of the stream's two paths, health of the jobs and the
rejected records: pure functions over ``pipeline_state``, ``pipeline_health`` (each job's
document, folded from the ledger by the runner: :mod:`pipelines.orchestration.jobhealth`) and
``rejects`` (read by ``queries`` and ``follow``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from pipelines.jobs import registry
from pipelines.jobs.registry import Staleness
from pipelines.orchestration import jobhealth
from pipelines.serving.alerts import levels as L

from .kpi_frames import utc
from .live import STREAM

JOBS = tuple(reversed(registry.PIPELINE))  # newest data first: stream, hourly, daily
REJECTS_CAP = 20_000  # newest rejects read for the panel


# ------------------------------------------------------------------- freshness and health


@dataclass(frozen=True)
class FreshnessRule:
    """``replay``: newest data time vs the replay clock; ``wall``: ``updated_at`` vs now."""

    wall: Staleness
    replay: Staleness | None = None  # None: the source defines the clock


def _rules() -> dict[str, FreshnessRule]:
    """The freshness rules of the registry's data jobs (their ``stale_wall``/``stale_replay``)."""
    rules = {}
    for name in registry.PIPELINE:
        spec = registry.JOBS[name]
        if spec.stale_wall is not None:
            rules[name] = FreshnessRule(wall=spec.stale_wall, replay=spec.stale_replay)
    return rules


DEFAULT_FRESHNESS: dict[str, FreshnessRule] = _rules()


def worst(levels: Iterable[str]) -> str:
    return L.worst(levels)


def freshness(
    states: dict[str, dict[str, Any]],
    clock: datetime | None,
    now: datetime,
    rules: dict[str, FreshnessRule] | None = None,
) -> list[dict[str, Any]]:
    """One dict per source: newest data time, ``updated_at``, replay and wall ages, level
    (ok / amber / red / missing): ``serving.alerts.levels.source_freshness``, what the
    ``stale_source`` alert rule reads too."""
    return [
        {"source": source, **L.source_freshness(states.get(source), rule, clock, now)}
        for source, rule in (rules or DEFAULT_FRESHNESS).items()
    ]


# -------------------------------------------------------------------- the stream's paths


# the levels of a path of the stream, in one home with the alert rules (``stream_behind``)
StreamRule = L.StreamLimits
STREAM_RULES: dict[str, StreamRule] = L.STREAM_LIMITS
PATH_NAMES = L.PATH_NAMES


def stream_health(
    states: Mapping[str, Mapping[str, Any]],
    now: datetime,
    rules: Mapping[str, StreamRule] | None = None,
) -> list[dict[str, Any]]:
    """One dict per query of the stream (``hot``, ``kpi``, ``lake`` of
    ``pipeline_state.flights_stream``):
    batch id, wall time ``at`` and ``age`` of its last batch, rows, lag (records behind
    Kafka's end offsets when it ran), seconds it took, level (ok / amber / red / missing).
    Empty for a stream that notes neither (before issue 17: ``freshness`` covers it)."""
    inputs = L.Inputs(now=now, states={STREAM: states.get(STREAM) or {}})
    return L.stream_paths(inputs, rules or STREAM_RULES)


def stream_levels(states: Mapping[str, Mapping[str, Any]], now: datetime) -> tuple[str, ...]:
    """The levels of :func:`stream_health` (what the page redraws when it changes)."""
    return tuple(r["level"] for r in stream_health(states, now))


def pipeline_health(
    jobs_health: Mapping[str, Mapping[str, Any]], now: datetime, jobs: Sequence[str] = JOBS
) -> list[dict[str, Any]]:
    """Last run of each job (status, start, end, error) and its failures in the 24 h before
    ``now``, from its ``pipeline_health`` document (``jobs_health``: by job); level red when
    the last run failed, amber when an earlier one did, missing before its first run."""
    since = now - jobhealth.WINDOW
    rows = []
    for job in jobs:
        doc = jobs_health.get(job) or {}
        last = doc.get("last") if isinstance(doc.get("last"), Mapping) else None
        failures = jobhealth.failures_since(doc, since)
        status = None if last is None else last.get("status")
        level = (
            "missing"
            if last is None
            else "red"
            if jobhealth.failed(status)
            else "amber"
            if failures
            else "ok"
        )
        rows.append(
            {
                "job": job,
                "status": status,
                "start": None if last is None else utc(last.get("start")),
                "end": None if last is None else utc(last.get("end")),
                "failures_24h": failures,
                "error": None if last is None else last.get("error"),
                "level": level,
            }
        )
    return rows


# ------------------------------------------------------------------------------- rejects


@dataclass
class RejectSummary:
    total: int
    read: int  # how many of the newest were read (capped at REJECTS_CAP)
    by_source: pd.DataFrame  # source, count, last_at
    by_reason: pd.DataFrame  # source, reason, count, last_at (most frequent first)


def rejects_summary(rejects: pd.DataFrame, total: int | None = None) -> RejectSummary:
    """Counts of refused records by source and by source + reason (counted client-side)."""
    total = len(rejects) if total is None else total
    if rejects.empty:
        cols = {c: pd.Series(dtype="object") for c in ("source", "reason", "count", "last_at")}
        by_reason = pd.DataFrame(cols)
        return RejectSummary(total, 0, by_reason.drop(columns="reason"), by_reason)
    frame = rejects.assign(
        source=rejects["source"].fillna("unknown"),
        reason=rejects["reason"].fillna("(no reason)").astype(str),
    )
    agg = {"count": ("at", "size"), "last_at": ("at", "max")}
    by_source = frame.groupby("source", as_index=False).agg(**agg)
    by_reason = frame.groupby(["source", "reason"], as_index=False).agg(**agg)
    return RejectSummary(
        total,
        len(frame),
        by_source.sort_values("count", ascending=False).reset_index(drop=True),
        by_reason.sort_values(["count", "last_at"], ascending=False).reset_index(drop=True),
    )
