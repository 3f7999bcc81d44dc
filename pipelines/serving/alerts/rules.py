"""The alert rules, in one home: pure functions from read-model documents to alert candidates.

The ``alerts`` job (``pipelines/jobs/alerts.py``) and the page's "Needs attention"
(``pipelines/dashboard/panels/attention.py``) both call :func:`evaluate` on the same
documents, read by ``_id`` the way the page reads them (``serving/alerts/inputs.py``, the
page's snapshot), so the page and the alerts cannot disagree. No I/O here.

A :class:`Candidate` is what a rule finds: its stable :attr:`~Candidate.key` (rule + subject:
an alert stays one alert while the key is found), its severity (``amber`` / ``red``), a message
that says what is wrong and an action that says what to do, and its facts (JSON values).

The rules (thresholds: :class:`~pipelines.core.config.AlertRuleSettings`, ``alerts.rules`` in
``parameters/<env>.yaml``; docs/dashboard.md says how to tune each):

- ``stale_source``: a data job's data is late against the replay clock or not updated for a
  while (the registry's ``stale_wall`` / ``stale_replay``);
- ``stream_behind``: a path of the stream (live board, lake path) has no recent
  batch while Kafka records wait, or too many wait (:data:`STREAM_LIMITS`);
- ``failed_job``: a job's last run failed (red), or a run failed in the last 24 h (amber);
- ``not_departed``: flights past their scheduled departure and not departed, per airport;
- ``late_departures``: departures of the last hour more than 60 min late, per airport;
- ``above_usual``: the average departure delay of the last hour at an airport above the usual
  for that weekday and hour (``kpi_profile.weekday_hour``);
- ``slipping_airline``: a carrier's average departure delay of the clock's day;
- ``delay_risk``: flights of the next hour a model scored at high delay risk (``delay_risk``
  on a board flight, 0..1); fires only where the field exists (no model writes it yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipelines.core.config import AlertRuleSettings
from pipelines.core.domain import NEW_YORK, STATUS_RANK, run_failed

from .levels import (
    STREAM,
    Inputs,
    SourceLimits,
    ago,
    number,
    source_freshness,
    stream_paths,
    utc,
)

SEVERITIES = ("amber", "red")
FAILURE_WINDOW = timedelta(hours=24)
LISTED = 20  # flight keys kept in an alert's facts


@dataclass(frozen=True)
class Candidate:
    """What a rule found now. ``facts``: JSON values (numbers, strings, lists of them)."""

    rule: str
    subject: str
    severity: str
    message: str
    action: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``rule:subject``: the same while the condition lasts (one alert)."""
        return f"{self.rule}:{self.subject}"


# ----------------------------------------------------------------------------- inputs


def stale_sources(inputs: Inputs, sources: Mapping[str, SourceLimits]) -> list[Candidate]:
    out = []
    for source, limits in sources.items():
        rec = source_freshness(inputs.states.get(source), limits, inputs.clock, inputs.now)
        if rec["level"] not in SEVERITIES:
            continue
        behind = rec["replay_age"]
        words = f"{ago(behind)} behind the replay clock, " if behind is not None else ""
        how = (
            f"`tarmac service status {source}` (start it if stopped)"
            if source == STREAM
            else f"`tarmac runs --job {source}`, then rerun it: `tarmac run {source}`"
        )
        out.append(Candidate(
            "stale_source", source, rec["level"],
            f"{source} is {'late' if rec['level'] == 'amber' else 'stale'}: {words}"
            f"last updated {ago(rec['wall_age'])} ago",
            f"check its last runs with {how}; the page shows older data meanwhile",
            {"source": source, "wall_age_s": _seconds(rec["wall_age"]),
             "replay_age_s": _seconds(behind)},
        ))  # fmt: skip
    return out


def stream_behind(inputs: Inputs) -> list[Candidate]:
    out = []
    for rec in stream_paths(inputs):
        if rec["level"] not in SEVERITIES:
            continue
        behind = "" if rec["lag"] is None else f", {rec['lag']:,} records behind Kafka"
        out.append(Candidate(
            "stream_behind", rec["path"], rec["level"],
            f"flights_stream {rec['name']} is {'late' if rec['level'] == 'amber' else 'stale'}: "
            f"last batch {ago(rec['age'])} ago{behind}",
            "`tarmac service status flights_stream`; if it runs, read its log "
            "(outputs/logs/service-flights_stream-<env>.log); the board lags meanwhile",
            {"path": rec["path"], "age_s": _seconds(rec["age"]), "lag": rec["lag"]},
        ))  # fmt: skip
    return out


def failures_since(doc: Mapping[str, Any] | None, since: datetime) -> int:
    """Failed runs of a ``pipeline_health`` document started at or after ``since``."""
    return sum(
        (t := utc(f.get("start"))) is not None and t >= since
        for f in (doc or {}).get("failures") or []
    )


def failed_jobs(inputs: Inputs) -> list[Candidate]:
    out = []
    for job, doc in inputs.health.items():
        last = doc.get("last") if isinstance(doc.get("last"), Mapping) else None
        if last is None:
            continue
        fails = failures_since(doc, inputs.now - FAILURE_WINDOW)
        facts = {"job": job, "run_id": last.get("run_id"), "status": last.get("status"),
                 "failures_24h": fails}  # fmt: skip
        rerun = f"read its report (`tarmac runs --job {job}`), fix the cause"
        if run_failed(last.get("status")):
            error = str(last.get("error") or "")[:300]
            out.append(Candidate(
                "failed_job", job, "red", f"{job}: last run {last.get('status')} — {error}",
                f"{rerun}, then rerun: `tarmac run {job}`", {**facts, "error": error},
            ))  # fmt: skip
        elif fails:
            out.append(Candidate(
                "failed_job", job, "amber", f"{job}: {fails} failed run(s) in the last 24 h",
                f"{rerun}; its last run succeeded", facts,
            ))  # fmt: skip
    return out


# ------------------------------------------------------------------------- the flights


def _late_for(flight: Mapping[str, Any], clock: datetime) -> float | None:
    sched = utc(flight.get("sched_dep_utc"))
    return None if sched is None else (clock - sched).total_seconds() / 60.0


def _rank(flight: Mapping[str, Any]) -> int | None:
    rank = number(flight.get("status_rank"))
    if rank is None and isinstance(flight.get("status"), str):
        return STATUS_RANK.get(flight["status"])
    return None if rank is None else int(rank)


def _by_origin(flights: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for f in flights:
        out[str(f.get("origin") or "?")].append(f)
    return dict(sorted(out.items()))


def not_departed(inputs: Inputs, th: AlertRuleSettings) -> list[Candidate]:
    clock = inputs.clock
    if clock is None:
        return []
    waiting = [
        (f, late) for f in inputs.flights
        if _rank(f) == STATUS_RANK["scheduled"]
        and (late := _late_for(f, clock)) is not None and late > th.not_departed_min
    ]  # fmt: skip
    out = []
    for origin, group in _by_origin(f for f, _ in waiting).items():
        lates = sorted((_late_for(f, clock) or 0.0 for f in group), reverse=True)
        red = lates[0] > th.not_departed_red_min
        out.append(Candidate(
            "not_departed", origin, "red" if red else "amber",
            f"{origin}: {len(group)} flight(s) past departure time and not departed yet "
            f"(up to {lates[0]:.0f} min)",
            "call the handling agents of those flights for a new departure time, and warn the "
            "gates; a flight that will not go should be cancelled in the system",
            {"origin": origin, "flights": len(group), "max_late_min": round(lates[0]),
             "flight_keys": _keys(group)},
        ))  # fmt: skip
    return out


def late_departures(inputs: Inputs, th: AlertRuleSettings) -> list[Candidate]:
    clock = inputs.clock
    if clock is None:
        return []
    since = clock - timedelta(minutes=th.late_window_min)
    late = [
        f for f in inputs.flights
        if (s := utc(f.get("sched_dep_utc"))) is not None and since <= s <= clock
        and (d := number(f.get("dep_delay"))) is not None and d > th.late_min
    ]  # fmt: skip
    out = []
    for origin, group in _by_origin(late).items():
        worst_ = max(number(f.get("dep_delay")) or 0.0 for f in group)
        out.append(Candidate(
            "late_departures", origin, "red",
            f"{origin}: {len(group)} departure(s) of the last {th.late_window_min} min more than "
            f"{th.late_min} min late (up to {worst_:.0f} min)",
            "check connections and crew hours of those flights, and the gates and stands they "
            "hold; tell the airlines' station managers",
            {"origin": origin, "flights": len(group), "max_delay_min": round(worst_),
             "flight_keys": _keys(group)},
        ))  # fmt: skip
    return out


def _cell(when: datetime) -> tuple[int, int]:
    local = when.astimezone(NEW_YORK)
    return local.isoweekday(), local.hour


def above_usual(inputs: Inputs, th: AlertRuleSettings) -> list[Candidate]:
    """The last hour's departures at an airport (scheduled within an hour before the clock,
    departed) against the usual of their weekday and local hour in ``kpi_profile`` (every
    loaded day: ``dep_delay_sum / dep_delay_n`` of those cells, weighted by the flights of
    each cell), once that weekday has ``usual_min_days`` loaded days."""
    clock = inputs.clock
    if clock is None:
        return []
    since = clock - timedelta(hours=1)
    profile: dict[tuple[str, int, int], tuple[float, float]] = {}
    for row in inputs.weekday_hour:
        w, h = number(row.get("weekday")), number(row.get("local_hour"))
        s, n = number(row.get("dep_delay_sum")), number(row.get("dep_delay_n"))
        if None not in (w, h, s, n) and n:
            profile[(str(row.get("origin")), int(w), int(h))] = (s, n)
    days = defaultdict(int)
    for d in inputs.days:
        if (w := number(d.get("weekday"))) is not None:
            days[int(w)] += 1
    out = []
    for origin, group in _by_origin(inputs.flights).items():
        cells: dict[tuple[int, int], list[float]] = defaultdict(list)
        for f in group:
            s, d = utc(f.get("sched_dep_utc")), number(f.get("dep_delay"))
            if s is not None and d is not None and since <= s <= clock:
                cells[_cell(s)].append(d)
        delays = [d for ds in cells.values() for d in ds]
        weekday = _cell(clock)[0]
        if len(delays) < th.above_usual_departed or days[weekday] < th.usual_min_days:
            continue
        weighted = [(len(ds), profile.get((origin, *c))) for c, ds in cells.items()]
        if any(p is None for _, p in weighted):
            continue
        usual = sum(n * p[0] / p[1] for n, p in weighted if p) / len(delays)
        avg = sum(delays) / len(delays)
        if avg - usual > th.above_usual_min:
            out.append(Candidate(
                "above_usual", origin, "amber",
                f"{origin}: average departure delay of the last hour {avg:.0f} min, "
                f"{avg - usual:.0f} min above the usual {usual:.0f} min for a "
                f"{clock.astimezone(NEW_YORK):%A} at this hour",
                "look for the cause (weather, runway, an airline) and expect the next banks to "
                "slip: warn the airlines and the ground handlers",
                {"origin": origin, "avg_delay_min": round(avg, 1),
                 "usual_delay_min": round(usual, 1), "departures": len(delays)},
            ))  # fmt: skip
    return out


def slipping_airlines(inputs: Inputs, th: AlertRuleSettings) -> list[Candidate]:
    """A carrier's departures of the clock's day (``kpi_daily.carriers``, every airport)."""
    sums: dict[str, dict[str, Any]] = {}
    for row in inputs.carriers:
        code = str(row.get("carrier") or "?")
        acc = sums.setdefault(code, {"name": row.get("carrier_name") or code, "departed": 0.0,
                                     "on_time": 0.0, "sum": 0.0, "n": 0.0})  # fmt: skip
        for key, col in (("departed", "departed"), ("on_time", "on_time"),
                         ("sum", "dep_delay_sum"), ("n", "dep_delay_n")):  # fmt: skip
            acc[key] += number(row.get(col)) or 0.0
    out = []
    for code, acc in sorted(sums.items()):
        if acc["departed"] < th.airline_departed or not acc["n"]:
            continue
        avg = acc["sum"] / acc["n"]
        if avg >= th.airline_delay_min:
            on_time = 100.0 * acc["on_time"] / acc["departed"]
            out.append(Candidate(
                "slipping_airline", code, "amber",
                f"{code} {acc['name']}: {avg:.0f} min average departure delay today, "
                f"{on_time:.0f} % on time over {acc['departed']:.0f} departures",
                "call the airline's station manager: crews, aircraft rotation, a plan for its "
                "next departures",
                {"carrier": code, "avg_delay_min": round(avg, 1), "on_time_pct": round(on_time, 1),
                 "departed": int(acc["departed"])},
            ))  # fmt: skip
    return out


def delay_risk(inputs: Inputs, th: AlertRuleSettings) -> list[Candidate]:
    """Not departed yet, scheduled within ``delay_risk_ahead_min`` after the clock, scored
    ``delay_risk`` >= ``delay_risk_min`` by a model (absent field: never fires)."""
    clock = inputs.clock
    if clock is None:
        return []
    until = clock + timedelta(minutes=th.delay_risk_ahead_min)
    risky = [
        f for f in inputs.flights
        if (r := number(f.get("delay_risk"))) is not None and r >= th.delay_risk_min
        and _rank(f) in (None, STATUS_RANK["scheduled"])
        and (s := utc(f.get("sched_dep_utc"))) is not None and clock <= s <= until
    ]  # fmt: skip
    out = []
    for origin, group in _by_origin(risky).items():
        top = max(number(f.get("delay_risk")) or 0.0 for f in group)
        out.append(Candidate(
            "delay_risk", origin, "red" if top >= th.delay_risk_red else "amber",
            f"{origin}: {len(group)} flight(s) of the next {th.delay_risk_ahead_min} min at high "
            f"delay risk (up to {top:.0%})",
            "check those flights' aircraft and crews now, and plan gates for a late departure",
            {"origin": origin, "flights": len(group), "max_risk": round(top, 3),
             "flight_keys": _keys(group)},
        ))  # fmt: skip
    return out


def evaluate(
    inputs: Inputs, thresholds: AlertRuleSettings, sources: Mapping[str, SourceLimits]
) -> list[Candidate]:
    """Every rule over ``inputs``: red first, then in the rules' order (sources, stream, jobs,
    the board, the hour, the airlines, the risk). ``sources``: the data jobs' freshness limits
    (the registry's ``stale_wall`` / ``stale_replay``)."""
    found = [
        *stale_sources(inputs, sources), *stream_behind(inputs), *failed_jobs(inputs),
        *not_departed(inputs, thresholds), *late_departures(inputs, thresholds),
        *above_usual(inputs, thresholds), *slipping_airlines(inputs, thresholds),
        *delay_risk(inputs, thresholds),
    ]  # fmt: skip
    return sorted(found, key=lambda c: 0 if c.severity == "red" else 1)


def _keys(flights: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(str(f.get("flight_key")) for f in flights if f.get("flight_key"))[:LISTED]


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else round(age.total_seconds(), 1)
