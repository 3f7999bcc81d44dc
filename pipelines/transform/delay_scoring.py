"""Scoring the delay-risk model without Spark jobs: the features of
:mod:`~pipelines.transform.delay_features` and the trained MLlib pipeline of
:mod:`~pipelines.transform.delay_model`, in plain Python over the few hundred flights of the
board buckets a refresh rewrites.

Why a second implementation: through Spark, the features of one day's 980 flights and the
model's transform took 15 to 25 s (``bench/delay_risk.py``, ``score_day_s``: a dozen shuffles
and windows, each a few hundred ms of overhead on 2 cores), more than the lake path's whole
refresh; here the same day takes milliseconds once its flights are on the driver. The two are
held equal: ``tests/integration/test_delay_features.py`` compares every feature of every
flight, and every score with the MLlib transform's, on the same frames.

- :func:`features`: the feature rows (:data:`~.delay_features.COLUMNS`) of flights given as
  dicts (the clean flights' :data:`~.delay_features.HISTORY_FIELDS` and
  :data:`~.delay_features.KNOWN_AT_SCORING`), with the same definitions and the same leakage
  guard (the flight's own fields read are its schedule's only).
- :class:`LinearScorer`: the fitted pipeline (string indexes, bands, one-hot sizes, the
  logistic regression's weights) as lookups; :meth:`LinearScorer.score` a probability.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipelines.core.domain import NEW_YORK
from pipelines.transform.delay_features import (
    CATEGORICAL,
    LATE_MIN,
    LEAD_MINUTES,
    TAIL_GAP_MAX,
    WEATHER_MEASURES,
    WINDOW_HOURS,
)

HOUR = timedelta(hours=1)
NO_AIRCRAFT = {"tail_prev_known": 0.0, "tail_prev_delay": 0.0, "tail_prev_pending": 0.0,
               "tail_gap_h": TAIL_GAP_MAX}  # fmt: skip
Row = Mapping[str, Any]


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _local_date(t: datetime) -> date:
    """The New York date of a naive UTC time."""
    return _to_local(t).date()


def _to_local(t: datetime) -> datetime:
    """A naive UTC time in New York."""
    return t.replace(tzinfo=UTC).astimezone(NEW_YORK)


def _mean(total: float, n: int) -> float:
    return total / n if n else 0.0


def features(
    flights: Iterable[Row], weather: Iterable[Row], lead_minutes: int = LEAD_MINUTES,
    history: Iterable[Row] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One feature row per flight of ``flights`` (naive UTC datetimes), as
    ``delay_features.features`` computes it in Spark: the origin's departures before the
    scoring hour of ``history`` (default ``flights``), the aircraft's previous departure, the
    weather of the hour before the scoring hour (``weather``: origin, hour_utc, measures)."""
    flights = list(flights)
    past = flights if history is None else list(history)
    # per (origin, departure hour) and (origin, carrier, departure hour): count, delay, late
    dep: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    dep_c: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    sched: dict[tuple, list[datetime | None]] = defaultdict(list)
    for f in past:
        sched[(f["origin"], _hour(f["sched_dep_utc"]))].append(f.get("dep_time_utc"))
        if f.get("dep_time_utc") is None or f.get("dep_delay") is None:
            continue
        h = _hour(f["dep_time_utc"])
        acc = dep[(f["origin"], h)]
        acc[0] += 1
        acc[1] += float(f["dep_delay"])
        acc[2] += float(f["dep_delay"] > LATE_MIN)
        c = dep_c[(f["origin"], f["carrier"], h)]
        c[0] += 1
        c[1] += float(f["dep_delay"])
    by_origin_hours: dict[str, list[datetime]] = defaultdict(list)
    for origin, h in dep:
        by_origin_hours[origin].append(h)
    tail = _aircraft(past, lead_minutes)
    sky = {(w["origin"], w["hour_utc"]): w for w in weather}
    out = []
    for f in flights:
        s = f["sched_dep_utc"]
        t = s - timedelta(minutes=lead_minutes)
        H = _hour(t)
        o = f["origin"]
        local = _to_local(s)
        row: dict[str, Any] = {
            "flight_key": f["flight_key"], "scoring_time": t, "sched_dep_utc": s,
            "month": local.month, "carrier": f["carrier"], "origin": o, "dest": f["dest"],
            "local_hour": local.hour, "weekday": local.isoweekday(),
            "distance": float(f["distance"]) if f.get("distance") is not None else None,
        }  # fmt: skip
        last = dep.get((o, H - HOUR), [0, 0.0, 0.0])
        window = [dep.get((o, H - k * HOUR), [0, 0.0, 0.0]) for k in range(1, WINDOW_HOURS + 1)]
        n3 = sum(w[0] for w in window)
        today = _local_date(H)
        day = [dep[(o, h)] for h in by_origin_hours[o] if h < H and _local_date(h) == today]
        nd = sum(d[0] for d in day)
        backlog = sum(
            1 for k in range(1, WINDOW_HOURS + 1) for d in sched.get((o, H - k * HOUR), ())
            if d is None or d >= H
        )  # fmt: skip
        carrier = [dep_c.get((o, f["carrier"], H - k * HOUR), [0, 0.0])
                   for k in range(1, WINDOW_HOURS + 1)]  # fmt: skip
        nc = sum(c[0] for c in carrier)
        row |= {
            "dep_n_1h": float(last[0]), "dep_delay_1h": _mean(last[1], last[0]),
            "dep_n_3h": float(n3), "dep_delay_3h": _mean(sum(w[1] for w in window), n3),
            "late_share_3h": _mean(sum(w[2] for w in window), n3),
            "day_n": float(nd), "day_delay": _mean(sum(d[1] for d in day), nd),
            "day_late_share": _mean(sum(d[2] for d in day), nd), "backlog_3h": float(backlog),
            "carrier_n_3h": float(nc), "carrier_delay_3h": _mean(sum(c[1] for c in carrier), nc),
        }  # fmt: skip
        row |= tail.get(f["flight_key"], NO_AIRCRAFT)
        w = sky.get((o, H - HOUR)) or {}
        row["weather_known"] = float(w.get("visib_km") is not None)
        row |= {m: float(w[m]) if w.get(m) is not None else 0.0 for m in WEATHER_MEASURES}
        out.append(row)
    return out


def _aircraft(past: list[Row], lead_minutes: int) -> dict[str, dict[str, float]]:
    """``delay_features.aircraft``: each flight's aircraft's previous departure."""
    by_tail: dict[str, list[Row]] = defaultdict(list)
    for f in past:
        if f.get("tailnum") is not None:
            by_tail[f["tailnum"]].append(f)
    out = {}
    for rows in by_tail.values():
        rows.sort(key=lambda r: (r["sched_dep_utc"], r["flight_key"]))
        for prev, f in zip([None, *rows[:-1]], rows, strict=True):
            t = f["sched_dep_utc"] - timedelta(minutes=lead_minutes)
            gap = None if prev is None else (f["sched_dep_utc"] - prev["sched_dep_utc"]) / HOUR
            within = gap is not None and gap < TAIL_GAP_MAX
            p_dep = prev.get("dep_time_utc") if prev else None
            known = within and p_dep is not None and p_dep < t
            pending = within and prev["sched_dep_utc"] < t and not known
            delay = prev.get("dep_delay") if known and prev else None
            out[f["flight_key"]] = {
                "tail_gap_h": float(min(gap, TAIL_GAP_MAX)) if within else TAIL_GAP_MAX,
                "tail_prev_known": float(known),
                "tail_prev_delay": float(delay) if delay is not None else 0.0,
                "tail_prev_pending": float(pending),
            }
    return out


def _band(splits: list[float], v: float) -> int:
    """MLlib's ``Bucketizer``: band i holds splits[i] <= v < splits[i + 1], the last band
    its upper bound too."""
    last = len(splits) - 2
    return next(i for i in range(last + 1) if splits[i] <= v < splits[i + 1] or i == last)


@dataclass(frozen=True)
class LinearScorer:
    """A fitted ``delay_model.pipeline`` as lookups: per categorical feature its label ->
    weight, per banded feature its splits and the weight of each band, the numeric features'
    weights and the intercept. A label or band the training never saw weighs 0 (the one-hot
    encoder's zero vector)."""

    categorical: Mapping[str, Mapping[str, float]]
    banded: Mapping[str, tuple[list[float], list[float]]]
    numeric: Mapping[str, float]
    intercept: float

    @classmethod
    def from_model(cls, model: Any) -> LinearScorer:
        """From the ``PipelineModel`` of ``delay_model.train`` (indexer, bucketizer, one-hot
        encoder, assembler, logistic regression)."""
        indexer, bucketizer, encoder, assembler, lr = model.stages
        weights = list(lr.coefficients.toArray())
        sizes = list(encoder.categorySizes)
        banded_cols = list(bucketizer.getInputCols())
        at = 0
        categorical: dict[str, dict[str, float]] = {}
        for col, labels, size in zip(CATEGORICAL, indexer.labelsArray, sizes, strict=False):
            categorical[col] = {lab: weights[at + i] for i, lab in enumerate(labels) if i < size}
            at += size
        banded = {}
        for col, splits, size in zip(banded_cols, bucketizer.getSplitsArray(),
                                     sizes[len(CATEGORICAL):], strict=True):  # fmt: skip
            banded[col] = (list(splits), [weights[at + i] if i < size else 0.0
                                          for i in range(len(splits) - 1)])  # fmt: skip
            at += size
        inputs = list(assembler.getInputCols())
        numeric_cols = inputs[len(CATEGORICAL) + len(banded_cols) :]
        numeric = dict(zip(numeric_cols, weights[at:], strict=True))
        return cls(categorical, banded, numeric, float(lr.intercept))

    def score(self, row: Mapping[str, Any]) -> float:
        """The probability of a departure more than 15 min late for one feature row."""
        z = self.intercept
        for col, weights in self.categorical.items():
            z += weights.get(str(row[col]), 0.0)
        for col, (splits, weights) in self.banded.items():
            v = float(row[col])
            z += weights[_band(splits, v)]
        for col, w in self.numeric.items():
            z += w * float(row[col] or 0.0)
        return 1.0 / (1.0 + math.exp(-z))
