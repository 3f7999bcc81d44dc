"""Recompute what a job touched and publish it to MongoDB: the heart of every job.

:func:`refresh` takes the local dates a job touched (a small key set on the driver) and, all on
the executors:

1. rebuilds the clean flights of those dates from the lake (``lake/recompute.flights_of``);
2. writes the ``flights_by_hour`` buckets of the touched hours to MongoDB (:func:`publish_board`,
   first: the live board is what a duty manager watches), whole (the hot path writes the same
   buckets seconds after an event in ``flights_by_hour_hot``, under the same ``_id``, and an
   hour's row is derived from its bucket when read; ``readmodels.resolve`` shows the one that
   knows more);
3. writes the ``kpi_hourly`` rows and ``kpi_daily`` documents of the dates
   (:func:`publish_days`: second, before the lake's commits, which take longest: the page's
   day figures follow the board by seconds, not by the lake's write);
4. overwrites the lake's ``clean/flights`` and KPI partitions of those dates, and the
   route-months of their months (``lake/recompute.write``);
5. writes the ``kpi_route_monthly`` documents of the months and the ``kpi_profile`` document,
   which are read back from the lake's KPI tables (:func:`publish_months`): the profile from
   every loaded day, kept in memory by the lake between refreshes and read again only where
   commits touched it since (``Lake.read_kept``), so its cost does not grow with the history
   a long-lived stream has loaded.

Documents written before the lake's commits are safe for the same reason as the board's: an
attempt that then loses its commit (a conflict) runs again and rewrites them from the
committed inputs; a stream killed between the two leaves its dates pending
(``recompute.pending_dates``: raw events newer than their KPIs), refreshed at its next start,
and a file job killed there is run again (its retry, or cron), which refreshes its dates.

Every write replaces whole partitions or whole documents, so running it again gives the same
state. Two jobs may refresh the same date at once (late weather re-enriches flights): one retry
loop runs the whole refresh again, from the committed data, when a Delta commit conflicts or
when its *inputs* moved while it ran (new events, weather or reference data committed
meanwhile: their Delta versions changed), so the last writer of a date used the latest inputs.
A refresh that lost an attempt takes a turn (``lake/turns``): the other refreshes of the lake
wait before their next attempt until it is done, so a slow refresh is not beaten forever by a
frequent one (the stream's lake path), and it is not run again for inputs that moved: the
jobs that commit flight events or weather refresh their dates after, and those refreshes wait
for this one (new reference data is picked up at a date's next refresh, as always). A weather
run's refresh takes its turn before its first attempt (``first``): beside a live stream that
attempt saw the stream's events move its inputs nearly every time (each weather run of the short
soak refreshed its date twice, 2026-12-07), so it ran once for nothing before it took the turn
anyway; the stream's lake path waits for it either way, for one refresh now instead of two.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.clients.mongo import Mongo
from pipelines.lake import recompute, tables
from pipelines.serving import documents, risk, sinks
from pipelines.serving.readmodels import (
    BOARD,
    KPI_DAILY,
    KPI_HOURLY,
    KPI_PROFILE,
    KPI_ROUTE_MONTHLY,
    REJECTS,
)
from pipelines.transform import kpis

log = structlog.get_logger(__name__)

ATTEMPTS = 8  # whole refreshes, when a commit conflicts or the inputs moved meanwhile


@dataclass(frozen=True)
class Board:
    """Which ``flights_by_hour`` buckets a refresh rewrites: those of ``hours`` (origin,
    sched_hour_utc; None = every hour of the dates) up to the serving horizon ending at
    ``newest`` (None = the newest event of the dates)."""

    hours: DataFrame | None = None
    newest: datetime | None = None


EVERY_HOUR = Board()


def refresh(
    lake: tables.Lake,
    store: Mongo,
    dates: Iterable[str],
    board: Board | None = EVERY_HOUR,
    *,
    horizon: int | None,
    inputs: tuple[tables.Table, ...] = recompute.INPUTS,
    profile: bool = True,
    attempts: int = ATTEMPTS,
    first: bool = False,
) -> dict[str, float]:
    """Recompute and publish the local ``dates``: clean flights, KPI tables, their MongoDB
    documents and the profile. ``board``: the live board's buckets to rewrite (None: none),
    within ``horizon`` hours before the newest event (``serving.board_hours``; None: all).
    ``inputs``: the tables whose moving during the refresh makes it run again. ``profile``:
    also recompute ``kpi_profile`` (the dashboard's index of changed days: keep it with every
    KPI write). ``first``: take a turn before the first attempt, as a refresh that lost one
    does (a file job's, which a live stream's lake path would beat: see the module). Returns
    step timings (seconds, summed over attempts)."""
    dates = sorted(set(dates))
    if not dates or not lake.exists(tables.FLIGHT_EVENTS):
        return {}
    steps: dict[str, float] = {}
    ticket: str | None = None  # taken once an attempt is lost: the others let this one go
    try:
        if first:
            ticket = lake.turns.take()
        for attempt in range(1, attempts + 1):
            waited = lake.turns.wait(ticket)  # the refreshes that lost before go first
            if waited:
                steps["turn_wait"] = steps.get("turn_wait", 0.0) + waited
            seen = lake.versions(inputs)
            try:
                _refresh(lake, store, dates, board, horizon, profile, steps)
            except Exception as exc:  # noqa: BLE001 - py4j errors are not PySparkException
                if attempt == attempts or not tables.is_conflict(exc):
                    raise
                log.warning("publish.conflict_retry", attempt=attempt, dates=len(dates),
                            error=type(exc).__name__)  # fmt: skip
                ticket = ticket or lake.turns.take()
                continue
            if ticket is not None or lake.versions(inputs) == seen:
                # holding a turn: the jobs that moved inputs meanwhile refresh their dates
                # after this attempt (their refreshes waited for it), not run again
                break
            log.info("publish.inputs_moved", attempt=attempt, dates=len(dates))
            ticket = lake.turns.take()
    finally:
        if ticket is not None:
            lake.turns.give_back(ticket)
    return steps


def _refresh(
    lake: tables.Lake,
    store: Mongo,
    dates: list[str],
    board: Board | None,
    horizon: int | None,
    profile: bool,
    steps: dict[str, float],
) -> None:
    """One refresh of ``dates``: the board, the lake, the KPI documents (see the module)."""
    computed_at = datetime.now(UTC).replace(tzinfo=None)  # before reading: see pending_dates
    flights = recompute.flights_of(lake, dates).persist()
    kpi: recompute.Kpis | None = None
    try:  # an attempt lost to a conflict frees its cached frames too (the stream lives long)
        if board is not None:
            with _timed(steps, "board"):
                publish_board(lake, store, flights, dates, board, horizon)
        kpi = recompute.kpis_of(flights, dates, computed_at)
        with _timed(steps, "kpi_docs"):
            publish_days(store, flights, kpi)
        with _timed(steps, "lake"):
            monthly = recompute.write(lake, flights, kpi)
        with _timed(steps, "month_docs"):
            publish_months(lake, store, monthly, profile)
        tables.release(monthly)  # a local checkpoint: its blocks now, not at the next JVM GC
    finally:
        if kpi is not None:
            kpi.unpersist()
        flights.unpersist()


def publish_board(
    lake: tables.Lake, store: Mongo, flights: DataFrame, dates: list[str], board: Board,
    horizon: int | None,
) -> None:  # fmt: skip
    """The ``flights_by_hour`` buckets of ``board``'s hours among ``flights`` (the clean
    flights of ``dates``), within ``horizon`` hours of the newest, with their delay risk when
    a model exists (the weather is then read)."""
    touched = flights if board.hours is None else flights.join(
        F.broadcast(board.hours), ["origin", "sched_hour_utc"], "left_semi")  # fmt: skip
    newest = board.newest
    if horizon is not None and newest is None:
        newest = flights.agg(F.max("last_event_time")).first()[0]
    touched = documents.within_horizon(touched, "sched_hour_utc", newest, horizon)
    touched = risk.with_risk(lake, touched, flights, lambda: recompute.weather_of(lake, dates))
    sinks.write(documents.board_docs(touched), store, BOARD)


def publish_days(store: Mongo, flights: DataFrame, kpi: recompute.Kpis) -> None:
    """The ``kpi_daily`` documents and ``kpi_hourly`` rows of ``kpi``'s dates (written side
    by side; the rows' versions from ``flights``, the clean flights of those dates)."""
    recompute.in_parallel(
        lambda: sinks.write(documents.daily_docs(kpi.hourly, kpi.carriers, kpi.weather),
                            store, KPI_DAILY),
        lambda: sinks.write(documents.hourly_docs(kpi.hourly, documents.bucket_versions(flights)),
                            store, KPI_HOURLY),
    )  # fmt: skip


def publish_months(lake: tables.Lake, store: Mongo, monthly: DataFrame, profile: bool) -> None:
    """The ``kpi_route_monthly`` documents of ``monthly`` (the route-months written) and,
    when ``profile``, the profile, side by side: both read the lake's KPI tables."""
    recompute.in_parallel(
        lambda: sinks.write(documents.route_month_docs(monthly), store, KPI_ROUTE_MONTHLY),
        *([lambda: publish_profile(lake, store)] if profile else []),
    )


def publish_profile(lake: tables.Lake, store: Mongo) -> None:
    """Recompute the ``kpi_profile`` document from the lake's KPI tables (every loaded day),
    read through :meth:`~pipelines.lake.tables.Lake.read_kept`: a long-lived process (the
    stream's lake path) reads again only the dates written since its last profile."""
    try:
        sinks.write(profile_frame(lake), store, KPI_PROFILE)
    except Exception as exc:  # noqa: BLE001 - py4j errors are not PySparkException
        if not tables.lost_kept_block(exc):
            raise
        log.warning("publish.profile_kept_lost", error=type(exc).__name__)
        lake.forget_kept()
        sinks.write(profile_frame(lake), store, KPI_PROFILE)


def profile_frame(lake: tables.Lake) -> DataFrame:
    """The ``kpi_profile`` document from the lake's KPI tables, as it keeps them."""
    read = lake.read_kept
    hourly = read(tables.KPI_HOURLY)
    return documents.profile_doc(
        hourly.groupBy("date").agg(
            F.first("weekday").alias("weekday"),
            F.sum("flights").cast("long").alias("flights"),
            F.max("updated_at").alias("updated_at"),
        ),
        kpis.profile_weekday_hour(hourly),
        kpis.profile_carrier_weekday(read(tables.KPI_CARRIER_DAILY)),
        kpis.profile_weather(read(tables.KPI_WEATHER_DAILY)),
    )


def publish_rejects(
    lake: tables.Lake, store: Mongo, rejects: DataFrame, txn: tuple[str, int] | None = None
) -> None:
    """The one writer of refused records, for every job: reject rows (``transform/rejects``)
    appended to ``raw/rejects`` (exactly once with ``txn``, Delta's application id and version)
    and written to the ``rejects`` collection by ``_id`` (``documents.reject_docs``)."""
    lake.append(rejects, tables.REJECTS, txn=txn)
    sinks.write(documents.reject_docs(rejects), store, REJECTS)


class _timed:  # noqa: N801 - used as a statement: ``with _timed(steps, "lake"):``
    """Adds the wall time of its block to ``steps[name]``."""

    def __init__(self, steps: dict[str, float], name: str) -> None:
        self.steps, self.name, self.t0 = steps, name, 0.0

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.steps[self.name] = self.steps.get(self.name, 0.0) + time.monotonic() - self.t0
