"""``rebuild``: recompute the clean and serving tables of a range of dates from the raw lake and
rewrite their MongoDB documents; the same results, document for document, as the incremental
path wrote (``tarmac rebuild [--from DATE] [--to DATE]``, ``run rebuild``,
``submit rebuild``).

When to use it: after a change to a measure, a cleaning rule, an enrichment or a document's
shape, to correct the past without replaying 2013 through Kafka; after a ``clean/*`` or
``serving/*`` table or a collection was lost or damaged (the raw tables are the source of
truth: ``raw/flight_events`` and ``raw/weather`` are only ever appended).

What it does, a calendar quarter of local dates at a time by default (a chunk; ``by``: a month
or a year):

1. ``clean/weather`` of the chunk's UTC days from ``raw/weather`` (the newest landed row of each
   origin-hour, as ``weather_hourly`` does), and their ``weather_hourly`` documents within the
   serving horizon of the newest weather hour of the lake;
2. :func:`pipelines.serving.publish.refresh` of the chunk's dates: ``clean/flights`` from every
   raw event, the KPI tables, the ``flights_by_hour`` buckets within the serving horizon of the
   newest event of the lake (the buckets a catch-up of the whole log writes: an older bucket's
   document, written while it was live, is left as it is), the ``kpi_hourly``, ``kpi_daily`` and
   ``kpi_route_monthly`` documents;
3. the chunk recorded as done in the lake (``_ops/rebuild``, a Delta table); once every chunk is,
   the ``kpi_profile`` document and the rebuild recorded as finished.

Safe while the stream runs: every write replaces whole partitions or whole documents inside a
Delta transaction; a commit conflict redoes the step and a chunk whose inputs moved meanwhile
(new events, weather, reference data) is recomputed from the newer data (``refresh``). Resumable:
a rebuild that died goes on, with the same range, from the first chunk it had not finished
(``restart=True`` starts over). The reference tables (``clean/airlines``, ``airports``,
``planes``) are snapshots of a file, not derived from other tables: ``reference_daily`` rewrites
them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import structlog
from pyspark.sql import functions as F
from tqdm import tqdm

from pipelines.clients.mongo import Mongo
from pipelines.clients.spark import build_session
from pipelines.core import faults, logs
from pipelines.core.config import Settings
from pipelines.jobs import weather_hourly
from pipelines.jobs.params import RebuildParams
from pipelines.lake import recompute, tables
from pipelines.lake.tables import Lake
from pipelines.serving import publish

log = structlog.get_logger(__name__)

JOB = "rebuild"
PROGRESS = tables.Table("_ops/rebuild")  # one row per chunk done, one "*" row per finished run
PROGRESS_SCHEMA = "run_id string, range string, chunk string, done_at timestamp"
FINISHED = "*"


def raw_dates(lake: Lake, start: date | None, end: date | None) -> list[str]:
    """The local dates of ``raw/flight_events`` within ``[start, end]`` (a bound None: open),
    from the partition column alone."""
    frame = lake.read(tables.FLIGHT_EVENTS).select("date")
    if start is not None:
        frame = frame.where(F.col("date") >= start.isoformat())
    if end is not None:
        frame = frame.where(F.col("date") <= end.isoformat())
    return sorted(r.date for r in frame.distinct().collect())


CHUNKS = ("month", "quarter", "year")  # what a rebuild does at once, recorded when done


def chunk_of(day: str, by: str = "month") -> str:
    """The chunk of the local date ``day``: ``2013-03``, ``2013-Q1`` or ``2013``."""
    if by == "month":
        return day[:7]
    if by == "quarter":
        return f"{day[:4]}-Q{(int(day[5:7]) - 1) // 3 + 1}"
    if by == "year":
        return day[:4]
    raise ValueError(f"a rebuild goes by {' or '.join(CHUNKS)}, not {by!r}")


def chunks(dates: list[str], by: str = "month") -> Iterator[tuple[str, list[str]]]:
    """``dates`` by calendar month (or quarter, or year): ``("2013-03", [...])`` in order (a
    chunk holds whole months, whose route KPIs are computed from their days once it is done)."""
    found: dict[str, list[str]] = {}
    for d in dates:
        found.setdefault(chunk_of(d, by), []).append(d)
    yield from found.items()


def range_key(start: date | None, end: date | None, by: str = "month") -> str:
    """``2013-01-01..2013-03-31`` (``..`` an open end; `` by quarter`` when not by month):
    which rebuild a resumed one continues."""
    return f"{start or ''}..{end or ''}" + ("" if by == "month" else f" by {by}")


def _progress(lake: Lake, key: str) -> tuple[str | None, set[str]]:
    """The unfinished rebuild of ``key`` (its run id and the chunks it did), or ``(None, {})``."""
    rows = lake.read(PROGRESS, PROGRESS_SCHEMA).where(F.col("range") == key)
    last = rows.orderBy(F.col("done_at").desc()).select("run_id").first()
    if last is None:
        return None, set()
    done = {r.chunk for r in rows.where(F.col("run_id") == last.run_id).select("chunk").collect()}
    return (None, set()) if FINISHED in done else (last.run_id, done)


def _record(lake: Lake, run_id: str, key: str, chunk: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    row = lake.spark.createDataFrame([(run_id, key, chunk, now)], PROGRESS_SCHEMA)
    tables.retrying(lambda: lake.append(row, PROGRESS), "rebuild progress")


def _newest(lake: Lake, table: tables.Table, column: str) -> Any:
    """The newest ``column`` of ``table`` (None when it is empty or absent): the end of the
    serving horizon the incremental path used when it last wrote."""
    if not lake.exists(table):
        return None
    return lake.read(table).agg(F.max(column)).first()[0]


def run(
    settings: Settings,
    start: date | None = None,
    end: date | None = None,
    restart: bool = False,
    progress: bool = False,
    by: str = "quarter",
) -> dict[str, Any]:
    """Rebuild the local dates ``[start, end]`` of the raw log (see the module), ``by`` month,
    quarter or year at a time; return the counts and the time of each step.

    The chunk trades speed for the resume grain. The year of 2013 (1,001,615 events) on 2
    quiet cores (``bench/rebuild.py``): by month 152 s, by quarter 89 s, by year 67 s, every
    document identical each way. Each chunk pays its Delta commits (about ten) and its Spark
    jobs again: the lake's overwrites took 81, 41 and 32 s of those."""
    if by not in CHUNKS:  # before any work
        raise ValueError(f"a rebuild goes by {' or '.join(CHUNKS)}, not {by!r}")
    t0 = time.monotonic()
    lake, store = Lake.of(build_session(settings, JOB), settings), Mongo.of(settings)
    horizon = settings.serving.board_hours
    result: dict[str, Any] = dict.fromkeys(
        ("dates", "rebuilt_dates", "chunks", "skipped_chunks", "rows_in", "accepted", "rejected"), 0
    )
    result["resumed"] = False
    if not lake.exists(tables.FLIGHT_EVENTS):
        log.info("rebuild.nothing", reason="raw/flight_events does not exist yet")
        return {**result, "seconds": round(time.monotonic() - t0, 2)}
    dates = raw_dates(lake, start, end)
    result["dates"] = len(dates)
    key = range_key(start, end, by)
    run_id, done = (None, set()) if restart else _progress(lake, key)
    result["resumed"] = run_id is not None
    run_id = run_id or uuid.uuid4().hex[:12]
    newest_event = _newest(lake, tables.FLIGHT_EVENTS, "event_time")
    newest_hour = _newest(lake, tables.RAW_WEATHER, "hour_utc")
    # the session, the dates, the resume point and the serving horizons' ends
    steps: dict[str, float] = {"plan": time.monotonic() - t0}
    todo = [(chunk, ds) for chunk, ds in chunks(dates, by) if chunk not in done]
    result["skipped_chunks"] = len(done)
    result["rows_in"] = sum(len(ds) for _, ds in todo)  # the runner's counts: dates planned,
    result["rejected"] = 0  # dates rebuilt (accepted), none refused
    bar = tqdm(todo, desc="rebuild", unit=by, disable=not progress)
    for chunk, chunk_dates in bar:
        bar.set_postfix_str(f"{chunk} ({len(chunk_dates)} dates)")
        c0 = time.monotonic()
        if newest_hour is not None:
            days = recompute.weather_days(chunk_dates)
            tables.retrying(
                lambda d=days: weather_hourly.clean_days(lake, store, d, newest_hour, horizon),
                "clean weather",
            )
        steps["weather"] = steps.get("weather", 0.0) + time.monotonic() - c0
        for name, seconds in publish.refresh(
            lake, store, chunk_dates, publish.Board(newest=newest_event), horizon=horizon,
            profile=False,
        ).items():  # fmt: skip
            steps[name] = steps.get(name, 0.0) + seconds
        r0 = time.monotonic()
        _record(lake, run_id, key, chunk)
        steps["record"] = steps.get("record", 0.0) + time.monotonic() - r0
        result["rebuilt_dates"] += len(chunk_dates)
        result["accepted"] = result["rebuilt_dates"]
        result["chunks"] += 1
        if not progress:
            logs.step(f"rebuild {chunk}", f"{len(chunk_dates)} dates",
                      f"{time.monotonic() - c0:.1f} s")  # fmt: skip
        faults.point("rebuild.after_chunk")  # tests: a chunk done, the next not started
    p0 = time.monotonic()
    if dates:
        publish.publish_profile(lake, store)
    steps["profile"] = time.monotonic() - p0
    _record(lake, run_id, key, FINISHED)
    result.update(run_id=run_id, first=dates[0] if dates else None,
                  last=dates[-1] if dates else None,
                  steps={k: round(v, 2) for k, v in steps.items()},
                  seconds=round(time.monotonic() - t0, 2))  # fmt: skip
    log.info("rebuild.done", **result)
    return result


def main(settings: Settings, params: RebuildParams) -> dict[str, Any]:
    """The registry's entry: :func:`run` of ``params``."""
    return run(settings, params.from_date, params.to_date, params.restart, by=params.by)
