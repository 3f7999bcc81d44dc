"""The dashboard's read side over the serving collections of docs/data-model.md.

FerretDB v1.24 (SQLite) serves only ``{_id: value}`` from an index: any other filter scans the
whole collection, and it decodes every value of a document on read (a typed ``kpi_daily``
document costs ~15 ms, a year of them ~3.5 s). So every KPI read here is by ``_id``, of the
documents the page needs, computed from the replay clock:

- ``kpi_profile`` (one document): every loaded date with its ``updated_at``, and the sums of
  the whole period (weekday x hour, carrier x weekday, weather);
- ``kpi_daily`` of the selected dates, the clock's day and the days after it (a whole-period
  figure is the profile minus those days' rows: see ``analytics``);
- ``kpi_route_monthly`` of the selected months; ``flights_by_hour`` of the hours around the
  clock (the live board); ``weather_hourly`` of the last hours.

:func:`load_snapshot` reads it all once per refresh; given the previous snapshot it re-reads only
the ``kpi_daily`` documents whose ``updated_at`` in the profile moved (and the months of those
days). Dates selected later are read on demand (:func:`read_more`) and kept. Every filter change
is answered from memory by the pure functions of ``analytics`` and ``health``.
Sums are added up client-side (FerretDB computes only the first accumulator of a ``$group``
correctly: no ``$group`` here at all).

Errors are not caught here: callers get ``pymongo.errors.PyMongoError`` (or
``ServiceUnavailableError`` from :func:`pipelines.clients.mongo.database`) and decide what to show.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from pymongo.database import Database

from pipelines.core.domain import ORIGINS
from pipelines.serving import readmodels as RM
from pipelines.serving.buckets import BOARD_PROJECTION, Reads, by_ids  # noqa: F401 - the page's reads

from .decode import BOARD_FIELDS, board_frame, daily_rows, month_rows, profile_of
from .health import JOBS, REJECTS_CAP
from .kpi_frames import Kpis, Profile, Rows, Scope, frame_of, local_date, utc
from .live import BOARD_AFTER, BOARD_BEFORE, board_window

CONSISTENCY_ROUNDS = 3  # profile / kpi_daily re-reads when a batch lands during a read


# ------------------------------------------------------------------------------ reading


def resolved(
    db: Database, collection: str, ids: Iterable[Any], projection: Any = None,
    reads: Reads | None = None,
) -> list[dict]:  # fmt: skip
    """The buckets of ``collection`` whose ``_id`` is in ``ids``, each as its readers see it:
    the lake path's document or the hot path's (its board bucket in ``readmodels.HOT_OF``, in
    the shape of ``collection``: ``readmodels.hot_view``), whichever knows more
    (``readmodels.resolve``). Both read by ``_id``; ``projection`` applies to the lake's (the
    hot bucket is read whole: an hour's row needs its flights)."""
    ids = list(dict.fromkeys(ids))
    lake = {d["_id"]: d for d in by_ids(db[collection], ids, projection, reads)}
    hot = {d["_id"]: RM.hot_view(collection, d)
           for d in by_ids(db[RM.HOT_OF[collection]], ids, None, reads)}  # fmt: skip
    docs = (RM.resolve(lake.get(i), hot.get(i)) for i in ids)
    return [d for d in docs if d is not None]


def read_states(db: Database) -> dict[str, dict[str, Any]]:
    """``pipeline_state`` documents by job id (a handful of documents)."""
    return {d["_id"]: d for d in db[RM.STATE].find({})}


def replay_clock(db: Database, states: dict[str, dict[str, Any]] | None = None):
    """Newest event time the stream has processed (``pipeline_state.flights_stream``), or
    None before its first batch."""
    states = read_states(db) if states is None else states
    return utc(states.get("flights_stream", {}).get("newest_event_time"))


def has_flights(db: Database) -> bool:
    """Flight documents exist, of either path (the KPIs may not yet): a bare ``find_one`` is
    answered without a scan (limit pushdown)."""
    return any(db[c].find_one({}, {"_id": 1}) is not None for c in (RM.BOARD, RM.BOARD_HOT))


def read_profile(db: Database, reads: Reads | None = None) -> Profile:
    if reads is not None:
        reads[RM.KPI_PROFILE] += 1
    return profile_of(db[RM.KPI_PROFILE].find_one({"_id": RM.PROFILE_ID}))


def read_more(
    db: Database,
    dates: Iterable[str] = (),
    months: Iterable[str] = (),
    reads: Reads | None = None,
) -> Rows:
    """The ``kpi_daily`` documents of ``dates`` and ``kpi_route_monthly`` of ``months``, by
    ``_id``: rows to add to a snapshot's :class:`Kpis` (``Kpis.with_rows``)."""
    dates, months = sorted(set(dates)), sorted(set(months))
    days = daily_rows(by_ids(db[RM.KPI_DAILY], dates, reads=reads), dates)
    if not months:
        return days
    return days.merge(month_rows(by_ids(db[RM.KPI_ROUTE_MONTHLY], months, reads=reads), months))


def _changed(stamp: datetime | None, read: datetime | None) -> bool:
    """A document read with ``updated_at`` = ``read`` is older than the profile's ``stamp``
    for it (either unknown: read it again)."""
    return stamp is None or read is None or stamp > read


def _month_stamps(stamps: Mapping[str, datetime | None]) -> dict[str, datetime | None]:
    """Per month, the newest ``updated_at`` of its days (None when one is unknown)."""
    out: dict[str, datetime | None] = {}
    for day, stamp in stamps.items():
        month = day[:7]
        if month in out and out[month] is None:
            continue
        out[month] = None if stamp is None else max(stamp, out.get(month) or stamp)
    return out


def read_kpis(
    db: Database,
    clock: datetime | None,
    dates: Iterable[str] = (),
    previous: Kpis | None = None,
    reads: Reads | None = None,
) -> Kpis:
    """``kpi_profile`` and what the page needs of ``kpi_daily`` / ``kpi_route_monthly``.

    Read by ``_id``: ``dates`` (the selected dates; default the clock's day), the clock's day
    and every loaded day after it (the last loaded day stands in for the clock before there is
    one), the months of ``dates``. Of ``previous`` (the last snapshot's KPIs) every document is
    kept whose ``updated_at`` is not older than the profile's ``days[].updated_at`` (a month:
    than the newest of its days); the others are read again. A document newer than the profile
    (a batch landed meanwhile) has the profile read again, so that the profile and the rows
    subtracted from it describe the same data."""
    dates = list(dates)
    profile = read_profile(db, reads)
    rows = previous.rows if previous is not None else Rows.empty()
    for _ in range(CONSISTENCY_ROUNDS):
        stamps = profile.stamps
        months = _month_stamps(stamps)
        held = [d for d in rows.read if d in stamps]
        held_months = [m for m in rows.months_read if m in months]
        rows = rows.keep(
            [d for d in held if not _changed(stamps[d], rows.read[d])],
            [m for m in held_months if not _changed(months[m], rows.months_read[m])],
        )
        kpis = Kpis(profile, rows)
        clock_day = local_date(clock).isoformat() if clock else (kpis.dates or [None])[-1]
        selected = dates or ([clock_day] if clock_day else [])
        want = {*selected, *held}
        if clock_day is not None:
            want |= {clock_day, *kpis.after(clock_day)}
        want_months = {*(d[:7] for d in selected), *held_months}
        new = read_more(db, kpis.missing(want), kpis.missing_months(want_months), reads)
        rows = rows.merge(new)
        newer = [
            d
            for d, t in new.read.items()
            if t is not None and stamps.get(d) is not None and t > stamps[d]
        ]
        if not newer:
            break
        profile = read_profile(db, reads)  # a batch landed meanwhile: the profile again
    return Kpis(profile, rows)


def read_weather_near(
    db: Database, clock: datetime, hours: int = 3, reads: Reads | None = None
) -> pd.DataFrame:
    """``weather_hourly`` of the last ``hours`` hours up to the clock, by ``_id``
    (``ORIGIN|YYYY-MM-DDTHH:00Z``): the newest of each origin."""
    top = clock.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    proj = {"origin": 1, "hour_utc": 1, "visib_km": 1, "wind_speed_kmh": 1, "precip_mm": 1,
            "temp_c": 1, "visib_band": 1, "wind_band": 1, "precip": 1}  # fmt: skip
    docs = []
    for origin in ORIGINS:
        for h in range(hours + 1):
            if reads is not None:
                reads[RM.WEATHER_HOURLY] += 1
            key = RM.hour_key(origin, top - timedelta(hours=h))
            if doc := db[RM.WEATHER_HOURLY].find_one({"_id": key}, proj):
                docs.append(doc)
                break
    frame = frame_of(docs, proj)
    frame["hour_utc"] = pd.to_datetime(frame["hour_utc"], utc=True)
    return frame


def read_board(
    db: Database,
    clock: datetime,
    before: timedelta = BOARD_BEFORE,
    after: timedelta = BOARD_AFTER,
    reads: Reads | None = None,
) -> pd.DataFrame:
    """Flights scheduled within [clock - before, clock + after], from the ``flights_by_hour``
    documents of those hours (read by ``_id``)."""
    keys, start, end = board_window(clock, before, after)
    # the lake path's bucket or the hot path's: the one that knows more is shown
    return board_frame(resolved(db, RM.BOARD, keys, BOARD_PROJECTION, reads), start, end)


# what the page reads of a board bucket: the board, and a live date's rows (readmodels.day_doc)


def read_health(db: Database, jobs: Iterable[str] = JOBS, reads: Reads | None = None) -> dict:
    """Each job's ``pipeline_health`` document (last run, failures of the last 24 h), by
    ``_id``: the runner keeps them where it writes the ledger, so this read does not grow with
    ``pipeline_runs`` (reading 8 days of it with a ``start`` filter, which FerretDB answers by
    scanning, took 1.6 s with 11,720 runs; see ``bench/job_health.py``)."""
    return {d["_id"]: d for d in by_ids(db[RM.HEALTH], jobs, reads=reads)}


def read_rejects(db: Database, cap: int = REJECTS_CAP) -> tuple[pd.DataFrame, int]:
    """The newest ``cap`` rejects (source, reason, at) and how many there are in all."""
    total = db[RM.REJECTS].estimated_document_count()
    cursor = db[RM.REJECTS].find({}, {"source": 1, "reason": 1, "at": 1, "_id": 0})
    if total > cap:
        cursor = cursor.sort("at", -1).limit(cap)
    frame = frame_of(cursor, ["source", "reason", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True, errors="coerce")
    return frame, total


def read_airlines(db: Database) -> dict[str, str]:
    return {d["_id"]: d.get("name") or d["_id"] for d in db[RM.AIRLINES].find({}, {"name": 1})}


# ----------------------------------------------------------------------------- snapshot


@dataclass
class Snapshot:
    """Everything the page shows, read once per refresh (KPI days read later are added)."""

    read_at: datetime
    clock: datetime | None
    states: dict[str, dict[str, Any]]
    kpis: Kpis
    weather_now: pd.DataFrame
    board: pd.DataFrame | None  # flights around the clock; None until read (see read_board)
    jobs: dict[str, dict[str, Any]]  # pipeline_health by job
    rejects: pd.DataFrame
    rejects_total: int
    airlines: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    reads: Reads = field(default_factory=Counter)  # documents looked up per collection
    board_read_at: datetime | None = None  # wall time the board was read
    has_flights: bool = False  # flight documents exist (KPIs may not yet)

    @property
    def has_data(self) -> bool:
        return bool(self.kpis.dates)

    @property
    def dates(self) -> list[str]:
        """Every loaded local date (``kpi_profile.days``), sorted."""
        return self.kpis.dates

    @property
    def first(self) -> date | None:
        return date.fromisoformat(self.dates[0]) if self.dates else None

    @property
    def last(self) -> date | None:
        return date.fromisoformat(self.dates[-1]) if self.dates else None

    @property
    def clock_day(self) -> str | None:
        """The replay clock's local date (the last loaded date before there is a clock)."""
        if self.clock is not None:
            return local_date(self.clock).isoformat()
        return self.dates[-1] if self.dates else None

    def needed(self, scope: Scope) -> tuple[list[str], list[str]]:
        """(dates, months) the panels of ``scope`` need that are not read yet."""
        return self.kpis.needed(scope, self.clock_day)

    def add(self, rows: Rows) -> None:
        """Keep rows read on demand (:func:`read_more`)."""
        self.kpis = self.kpis.with_rows(rows)

    def carriers(self) -> list[tuple[str, str]]:
        """(code, name) of every carrier of the loaded period; names from ``airlines`` or the
        KPIs."""
        frame = pd.concat(
            [
                self.kpis.profile.carrier_weekday[["carrier", "carrier_name"]],
                self.kpis.carrier_daily[["carrier", "carrier_name"]],
            ]  # fmt: skip
        )
        if frame.empty:
            return []
        names = frame.dropna(subset=["carrier_name"]).groupby("carrier")["carrier_name"].first()
        codes = sorted(frame["carrier"].dropna().unique())
        return [(c, self.airlines.get(c) or names.get(c) or c) for c in codes]


def load_snapshot(
    db: Database,
    now: datetime,
    board: bool = True,
    dates: Iterable[str] = (),
    previous: Snapshot | None = None,
) -> Snapshot:
    """Read what the page shows: ``pipeline_state``, the KPIs of ``dates`` (default: the replay
    clock's day) as :func:`read_kpis` does, the weather of the last hours, each job's health,
    the rejects and the airline names. ``previous``: the last snapshot, whose unchanged KPI
    documents are kept instead of read again. ``board=False`` leaves the live board to
    :func:`read_board`."""
    timings: dict[str, float] = {}
    reads: Reads = Counter()

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - started
        return value

    states = timed("pipeline_state", lambda: read_states(db))
    clock = replay_clock(db, states)
    kpis = timed(
        "kpis",
        lambda: read_kpis(db, clock, dates, previous.kpis if previous else None, reads),
    )

    def flights() -> pd.DataFrame | None:
        if not board:
            return None
        return read_board(db, clock, reads=reads) if clock else frame_of([], BOARD_FIELDS)

    weather = timed(
        "weather_hourly",
        lambda: read_weather_near(db, clock, reads=reads) if clock else frame_of([], []),
    )
    board_frame_ = timed("flights_by_hour", flights)
    jobs = timed("pipeline_health", lambda: read_health(db, reads=reads))
    rejects, rejects_total = timed("rejects", lambda: read_rejects(db))
    return Snapshot(
        read_at=now,
        clock=clock,
        states=states,
        kpis=kpis,
        weather_now=weather,
        board=board_frame_,
        jobs=jobs,
        rejects=rejects,
        rejects_total=rejects_total,
        airlines=timed("airlines", lambda: read_airlines(db)),
        timings=timings,
        reads=reads,
        board_read_at=now if board else None,
        has_flights=has_flights(db),
    )
