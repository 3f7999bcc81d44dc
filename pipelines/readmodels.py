"""The packed read models of ``docs/data-model.md``: their keys and document layout.

Spark-free, so the jobs (``serving``) that write them and the dashboard that reads them share
one definition of the ``_id`` formats, the packing and the decoding.

- ``flights_by_hour``: per (origin, scheduled departure hour UTC), the full documents of that
  hour's flights, packed (``mongo.pack``). The jobs' access path to flights and the live
  board's: every read is by ``_id`` (the one lookup FerretDB v1 serves from an index); the
  KPIs of a local date are recomputed from that date's 3 x 24 (23 or 25 on DST days) hours.
- ``kpi_daily``: per local date, every KPI row of that date (hourly, carrier-daily, weather
  impact, route-daily) as packed column tables: the extract the dashboard reads whole (365
  documents a year instead of ~40,000) and the partials the route-months are summed from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pymongo.database import Database

from . import mongo

BOARD = "flights_by_hour"
KPI_DAILY = "kpi_daily"
ORIGINS = ("EWR", "JFK", "LGA")
NEW_YORK = ZoneInfo("America/New_York")
FLIGHT_DATETIMES = ("sched_dep_utc", "sched_arr_utc", "dep_time_utc", "arr_time_utc",
                    "sched_hour_utc", "last_event_time")  # fmt: skip
KPI_DATETIMES = ("hour_utc",)

Board = dict[str, dict[str, dict[str, Any]]]  # {hour key: {flight id: flight document}}


def naive_utc(value: Any) -> Any:
    """Datetimes compared and stored as naive UTC (what pymongo writes as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def hour_key(origin: str, hour: datetime) -> str:
    """``ORIGIN|YYYY-MM-DDTHH:MMZ``: the ``_id`` of an hour in ``flights_by_hour``,
    ``weather_hourly`` and ``kpi_hourly``."""
    return f"{origin}|{naive_utc(hour).strftime('%Y-%m-%dT%H:%MZ')}"


def hours_of_date(day: str) -> list[datetime]:
    """The UTC hours (naive) whose New York local time falls on ``day`` (YYYY-MM-DD)."""
    d = date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, tzinfo=NEW_YORK).astimezone(UTC)
    nxt = d + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NEW_YORK).astimezone(UTC)
    n = int((end - start) / timedelta(hours=1))
    return [(start + timedelta(hours=i)).replace(tzinfo=None) for i in range(n)]


def board_keys(dates: Iterable[str], origins: Iterable[str] = ORIGINS) -> list[str]:
    """``flights_by_hour`` ids of every hour of ``dates`` at ``origins``."""
    return [hour_key(o, h) for d in sorted(set(dates)) for h in hours_of_date(d) for o in origins]


def days_of_month(month: str) -> list[str]:
    """Every ``YYYY-MM-DD`` of ``month`` (``YYYY-MM``)."""
    first = date.fromisoformat(month + "-01")
    nxt = (first + timedelta(days=32)).replace(day=1)
    return [(first + timedelta(days=i)).isoformat() for i in range((nxt - first).days)]


# ------------------------------------------------------------------------ flights_by_hour
def board_docs(board: Board) -> list[dict[str, Any]]:
    """``flights_by_hour`` documents of ``{hour key: {flight id: flight document}}``."""
    docs = []
    for key, flights in board.items():
        first = next(iter(flights.values()))
        ordered = sorted(flights.values(),
                         key=lambda f: (naive_utc(f.get("sched_dep_utc")), f["_id"]))  # fmt: skip
        docs.append({"_id": key, "origin": first["origin"], "date": first["date"],
                     "hour_utc": first["sched_hour_utc"], "n": len(ordered),
                     "flights": mongo.pack(ordered)})  # fmt: skip
    return docs


def read_board(db: Database, keys: list[str]) -> Board:
    """``{hour key: {flight id: flight document}}`` of the ``flights_by_hour`` docs that exist."""
    return {
        d["_id"]: {f["_id"]: f for f in mongo.unpack(d["flights"], FLIGHT_DATETIMES)}
        for d in mongo.find_by_ids(db[BOARD], keys, {"flights": 1})
    }


# ------------------------------------------------------------------------------ kpi_daily
def daily_docs(
    dates: Iterable[str],
    tables: Mapping[str, list[dict[str, Any]]],
    names: Mapping[str, Iterable[str]],
) -> list[dict[str, Any]]:
    """One ``kpi_daily`` document per date of ``dates`` from the KPI rows in ``tables``
    (``{table: rows}``, each row with a ``date``; ``names``: the columns of each table)."""
    by_day: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, rows in tables.items():
        for r in sorted(rows, key=_row_order):
            by_day.setdefault((name, r["date"]), []).append(r)
    docs = []
    for day in dates:
        packed = {name: mongo.columns(by_day.get((name, day), []), names[name]) for name in tables}
        docs.append({"_id": day, "month": day[:7], "flights": sum(packed["kpi_hourly"]["flights"]),
                     "tables": mongo.pack(packed)})  # fmt: skip
    return docs


def _row_order(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k)) for k in ("_id", "origin", "dest"))


def unpack_daily(doc: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """The column tables of one ``kpi_daily`` document: ``{table: {column: [values]}}``."""
    return mongo.unpack(doc["tables"], KPI_DATETIMES)


def read_daily(db: Database, dates: list[str]) -> list[dict[str, Any]]:
    """The ``kpi_daily`` tables of ``dates`` that exist: ``[{"date": d, table: columns}]``."""
    return [
        {"date": d["_id"], **unpack_daily(d)}
        for d in mongo.find_by_ids(db[KPI_DAILY], dates, {"tables": 1})
    ]
