"""The serving documents of docs/data-model.md built from plain row dicts: what the dashboard
tests seed MongoDB with. An oracle, independent of the jobs that write these documents
(``pipelines.serving.documents`` and co.): its own keys, buckets, sort orders and sums, from
the document shapes of the docs alone.

Rows (dicts; a measure left out counts 0, a field that is None is left out of the document):

- ``hourly``: origin, hour_utc (UTC), measures; ``date`` / ``local_hour`` default to the New
  York day and hour of ``hour_utc``;
- ``carriers``: carrier, carrier_name, origin, date, measures;
- ``weather``: origin, date, visib_band, precip, wind_band, measures;
- ``routes``: origin, dest, month, dest_name, dest_lat, dest_lon, measures;
- ``flights``: flight_key, origin, sched_dep_utc and the flight's fields.

``kpi_hourly`` (the stream's hot path, issue 17) holds one document per hourly row, the same
row ``kpi_daily`` carries in ``hours``; ``version`` (int) and ``updated_at`` may be given per
``_id`` (``hour_id``) like ``updated_at`` per date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
MEASURES = (
    "flights", "departed", "cancelled", "on_time", "delayed_60",
    "dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n",
)  # fmt: skip
STAMP = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)  # default updated_at
BUCKET_FIELDS = ("_id", "origin", "date", "month", "sched_hour_utc")  # not inside a flight

Row = Mapping[str, Any]
Stamps = datetime | Mapping[str, datetime]  # one updated_at, or one per date / month
Versions = int | Mapping[str, int]  # one version, or one per _id


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def hour_id(origin: str, hour: datetime) -> str:
    """``ORIGIN|YYYY-MM-DDTHH:MMZ``."""
    return f"{origin}|{_utc(hour):%Y-%m-%dT%H:%MZ}"


def _measures(row: Row) -> dict[str, Any]:
    return {m: row.get(m) or 0 for m in MEASURES}


def _clean(row: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """``fields`` of ``row`` that have a value (unknown = absent)."""
    return {f: row[f] for f in fields if row.get(f) is not None}


def _stamp(stamps: Stamps, key: str) -> datetime:
    return stamps if isinstance(stamps, datetime) else stamps.get(key, STAMP)


def _version(versions: Versions, key: str) -> int:
    return versions if isinstance(versions, int) else versions.get(key, 1)


def _order(*values: Any) -> tuple:
    return tuple((v is None, str(v)) for v in values)


def weekday(day: str) -> int:
    return date.fromisoformat(day).isoweekday()


def hour_row(row: Row) -> dict[str, Any]:
    """An hourly row with its local ``date`` and ``local_hour`` (given or computed)."""
    hour = _utc(row["hour_utc"])
    local = hour.astimezone(NEW_YORK)
    return {
        "origin": row["origin"],
        "hour_utc": hour,
        "date": row.get("date") or local.date().isoformat(),
        "local_hour": row.get("local_hour", local.hour),
        **_measures(row),
    }


# ------------------------------------------------------------------------------ kpi_daily


def daily_docs(
    hourly: Iterable[Row] = (),
    carriers: Iterable[Row] = (),
    weather: Iterable[Row] = (),
    updated_at: Stamps = STAMP,
) -> list[dict[str, Any]]:
    """One ``kpi_daily`` document per local date of any row."""
    by_day: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def put(day: str, part: str, row: dict[str, Any]) -> None:
        parts = by_day.setdefault(day, {"hours": [], "carriers": [], "weather": []})
        parts[part].append(row)

    for r in map(hour_row, hourly):
        put(r["date"], "hours", _clean(r, ("origin", "hour_utc", "local_hour")) | _measures(r))
    for r in carriers:
        put(r["date"], "carriers",
            _clean(r, ("carrier", "carrier_name", "origin")) | _measures(r))  # fmt: skip
    for r in weather:
        put(r["date"], "weather",
            _clean(r, ("origin", "visib_band", "precip", "wind_band")) | _measures(r))  # fmt: skip
    docs = []
    for day in sorted(by_day):
        parts = by_day[day]
        docs.append(
            {
                "_id": day,
                "date": day,
                "month": day[:7],
                "weekday": weekday(day),
                "flights": sum(h["flights"] for h in parts["hours"]),
                "hours": sorted(parts["hours"], key=lambda h: _order(h["origin"], h["hour_utc"])),
                "carriers": sorted(
                    parts["carriers"], key=lambda c: _order(c["carrier"], c["origin"])
                ),  # fmt: skip
                "weather": sorted(
                    parts["weather"],
                    key=lambda w: _order(
                        w["origin"], w.get("visib_band"), w.get("precip"), w.get("wind_band")
                    ),  # fmt: skip
                ),
                "updated_at": _stamp(updated_at, day),
            }
        )
    return docs


# ----------------------------------------------------------------------------- kpi_hourly


def hourly_docs(
    hourly: Iterable[Row] = (), updated_at: Stamps = STAMP, version: Versions = 1
) -> list[dict[str, Any]]:
    """One ``kpi_hourly`` document per hourly row (``_id`` = ``hour_id``): its origin, hour,
    local date, local hour, ISO weekday and measures, ``version``, ``updated_at`` (given per
    ``_id``, or per date, or one for all)."""
    docs = []
    for r in map(hour_row, hourly):
        key = hour_id(r["origin"], r["hour_utc"])
        stamp = updated_at if isinstance(updated_at, datetime) else updated_at.get(
            key, updated_at.get(r["date"], STAMP))  # fmt: skip
        docs.append(
            {
                "_id": key,
                "origin": r["origin"],
                "hour_utc": r["hour_utc"],
                "date": r["date"],
                "local_hour": r["local_hour"],
                "weekday": weekday(r["date"]),
                **_measures(r),
                "version": _version(version, key),
                "updated_at": stamp,
            }
        )
    return sorted(docs, key=lambda d: d["_id"])


# ----------------------------------------------------------------------- kpi_route_monthly


def route_month_docs(routes: Iterable[Row] = (), updated_at: Stamps = STAMP) -> list[dict]:
    """One ``kpi_route_monthly`` document per month of any route row."""
    by_month: dict[str, list[dict[str, Any]]] = {}
    for r in routes:
        fields = ("origin", "dest", "dest_name", "dest_lat", "dest_lon")
        by_month.setdefault(r["month"], []).append(_clean(r, fields) | _measures(r))
    return [
        {
            "_id": month,
            "month": month,
            "routes": sorted(rows, key=lambda r: _order(r["origin"], r["dest"])),
            "updated_at": _stamp(updated_at, month),
        }
        for month, rows in sorted(by_month.items())
    ]


# ---------------------------------------------------------------------------- kpi_profile


def _sum_into(into: dict[tuple, dict[str, Any]], key: tuple, head: dict, row: Row) -> None:
    acc = into.setdefault(key, {**head, **dict.fromkeys(MEASURES, 0)})
    for m in MEASURES:
        acc[m] += row.get(m) or 0


def profile_doc(daily: Iterable[Mapping[str, Any]], updated_at: datetime = STAMP) -> dict:
    """The ``kpi_profile`` document (``_id`` "all") of every ``kpi_daily`` document given."""
    days, by_hour, by_carrier, by_weather = [], {}, {}, {}
    for doc in sorted(daily, key=lambda d: d["date"]):
        wd = weekday(doc["date"])
        days.append({"date": doc["date"], "weekday": wd, "flights": doc["flights"],
                     "updated_at": doc["updated_at"]})  # fmt: skip
        for h in doc["hours"]:
            key = (h["origin"], wd, h["local_hour"])
            _sum_into(by_hour, key, {"origin": key[0], "weekday": wd, "local_hour": key[2]}, h)
        for c in doc["carriers"]:
            head = {"carrier": c["carrier"], "origin": c["origin"], "weekday": wd}
            _sum_into(by_carrier, (c["carrier"], c["origin"], wd),
                      head | _clean(c, ("carrier_name",)), c)  # fmt: skip
        for w in doc["weather"]:
            head = _clean(w, ("origin", "visib_band", "precip", "wind_band"))
            key = tuple(w.get(k) for k in ("origin", "visib_band", "precip", "wind_band"))
            _sum_into(by_weather, key, head, w)

    def ordered(rows: dict[tuple, dict]) -> list[dict]:
        return [rows[k] for k in sorted(rows, key=lambda k: _order(*k))]

    return {
        "_id": "all",
        "days": days,
        "weekday_hour": ordered(by_hour),
        "carrier_weekday": ordered(by_carrier),
        "weather": ordered(by_weather),
        "updated_at": updated_at,
    }


# ------------------------------------------------------------------------ flights_by_hour


def board_docs(flights: Iterable[Row], version: Versions = 1) -> list[dict[str, Any]]:
    """One ``flights_by_hour`` document per (origin, scheduled departure hour UTC), with its
    ``version`` (given per ``_id`` or one for all)."""
    buckets: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    for f in flights:
        sched = _utc(f["sched_dep_utc"])
        hour = sched.replace(minute=0, second=0, microsecond=0)
        flight = {k: v for k, v in f.items() if k not in BUCKET_FIELDS and v is not None}
        buckets.setdefault((f["origin"], hour), []).append(
            {**flight, "flight_key": f.get("flight_key") or f["_id"], "sched_dep_utc": sched}
        )
    return [
        {
            "_id": hour_id(origin, hour),
            "origin": origin,
            "hour_utc": hour,
            "date": hour.astimezone(NEW_YORK).date().isoformat(),
            "n": len(rows),
            "flights": sorted(rows, key=lambda f: (f["sched_dep_utc"], f["flight_key"])),
            "version": _version(version, hour_id(origin, hour)),
        }
        for (origin, hour), rows in sorted(buckets.items())
    ]


# -------------------------------------------------------------------------------- publish


def documents(
    *,
    hourly: Iterable[Row] = (),
    carriers: Iterable[Row] = (),
    weather: Iterable[Row] = (),
    routes: Iterable[Row] = (),
    flights: Iterable[Row] = (),
    updated_at: Stamps = STAMP,
    profile_at: datetime = STAMP,
) -> dict[str, list[dict[str, Any]]]:
    """Every serving document of the rows, by collection (no profile without a day); the
    ``kpi_hourly`` documents hold the same rows as ``kpi_daily``'s hours, equally stamped."""
    hourly = list(hourly)
    daily = daily_docs(hourly, carriers, weather, updated_at)
    return {
        "kpi_hourly": hourly_docs(hourly, updated_at),
        "kpi_daily": daily,
        "kpi_route_monthly": route_month_docs(routes, updated_at),
        "kpi_profile": [profile_doc(daily, profile_at)] if daily else [],
        "flights_by_hour": board_docs(flights),
    }


def publish(db, **rows: Any) -> dict[str, list[dict[str, Any]]]:
    """Replace the KPI and board collections of ``db`` with the documents of ``rows``
    (the arguments of :func:`documents`); return them."""
    docs = documents(**rows)
    for name, items in docs.items():
        db[name].drop()
        for i in range(0, len(items), 200):
            db[name].insert_many(items[i : i + 200], ordered=False)
    return docs


# ------------------------------------------------------------------------------ synthetic


def _random_measures(rng, most: int) -> dict[str, int]:
    flights = rng.randint(0, most)
    departed = flights - rng.randint(0, min(2, flights))
    on_time = rng.randint(0, departed)
    arrived = departed - rng.randint(0, min(1, departed))
    return {
        "flights": flights,
        "departed": departed,
        "cancelled": flights - departed,
        "on_time": on_time,
        "delayed_60": rng.randint(0, departed - on_time),
        "dep_delay_sum": sum(rng.randint(-8, 90) for _ in range(departed)),
        "dep_delay_n": departed,
        "arr_delay_sum": sum(rng.randint(-30, 90) for _ in range(arrived)),
        "arr_delay_n": arrived,
    }


def local_hours(day: str) -> list[datetime]:
    """The UTC hours whose New York time falls on ``day`` (23, 24 or 25)."""
    d = date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, tzinfo=NEW_YORK).astimezone(UTC)
    end = datetime.fromordinal(d.toordinal() + 1).replace(tzinfo=NEW_YORK).astimezone(UTC)
    return [datetime.fromtimestamp(t, UTC) for t in range(int(start.timestamp()),
                                                          int(end.timestamp()), 3600)]  # fmt: skip


VISIB = ("< 1 mi", "1-3 mi", "3-5 mi", "5-10 mi", "10+ mi")
WIND = ("0-10 mph", "10-20 mph", "20-30 mph", "30+ mph", "unknown")


def synthetic(
    first: date,
    days: int,
    *,
    seed: int = 0,
    origins: tuple[str, ...] = ("EWR", "JFK", "LGA"),
    carriers: int = 13,
    dests: int = 70,
    weather_rows: int = 6,
    most: int = 20,
    flights_at: Iterable[datetime] = (),
    per_bucket: int = 13,
) -> dict[str, list[dict[str, Any]]]:
    """Random but consistent-looking rows of ``days`` local dates from ``first``: an hourly row
    per origin and hour, ``carriers`` x origins carrier rows and ``weather_rows`` weather rows
    per origin and day, ``dests`` routes per origin and month, and ``per_bucket`` flights in
    each (origin, hour) bucket of the UTC hours ``flights_at``."""
    import random

    rng = random.Random(seed)
    codes = [f"C{i:02d}" for i in range(carriers)]
    parts = ("hourly", "carriers", "weather", "routes", "flights")
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in parts}
    months: set[str] = set()
    for i in range(days):
        day = date.fromordinal(first.toordinal() + i).isoformat()
        months.add(day[:7])
        for hour in local_hours(day):
            for origin in origins:
                out["hourly"].append({"origin": origin, "hour_utc": hour,
                                      **_random_measures(rng, most)})  # fmt: skip
        for origin in origins:
            for code in codes:
                out["carriers"].append({"carrier": code, "carrier_name": f"{code} Airways",
                                        "origin": origin, "date": day,
                                        **_random_measures(rng, most * 3)})  # fmt: skip
            seen = set()
            for _ in range(weather_rows):
                bands = (rng.choice(VISIB), rng.random() < 0.2, rng.choice(WIND))
                if bands in seen:
                    continue
                seen.add(bands)
                visib, precip, wind = bands
                row = {"origin": origin, "date": day, "visib_band": visib, "precip": precip,
                       "wind_band": wind, **_random_measures(rng, most * 2)}  # fmt: skip
                out["weather"].append(row)
    for month in sorted(months):
        for origin in origins:
            for k in range(dests):
                out["routes"].append({"origin": origin, "dest": f"D{k:02d}", "month": month,
                                      "dest_name": f"Airport {k}", "dest_lat": 30.0 + k / 10,
                                      "dest_lon": -100.0 + k / 10,
                                      **_random_measures(rng, most * 20)})  # fmt: skip
    out["flights"] = synthetic_flights(flights_at, seed=seed, origins=origins, carriers=carriers,
                                        per_bucket=per_bucket)  # fmt: skip
    return out


def synthetic_flights(
    hours: Iterable[datetime],
    *,
    seed: int = 0,
    origins: tuple[str, ...] = ("EWR", "JFK", "LGA"),
    carriers: int = 13,
    per_bucket: int = 13,
) -> list[dict[str, Any]]:
    """``per_bucket`` random flights scheduled in each (origin, UTC hour of ``hours``)."""
    import random

    rng = random.Random(seed)
    codes = [f"C{i:02d}" for i in range(carriers)]
    statuses = ("scheduled", "departed", "arrived", "cancelled")
    flights = []
    for hour in hours:
        for origin in origins:
            for n in range(per_bucket):
                sched = hour.replace(minute=rng.randint(0, 59))
                rank = rng.randint(1, 4)
                code = codes[n % carriers]
                flight = {
                    "flight_key": f"{sched:%Y-%m-%d}|{code}|{n}|{origin}|{sched:%H%M}",
                    "origin": origin, "carrier": code, "carrier_name": f"{code} Airways",
                    "flight": 100 + n, "tailnum": f"N{n:03d}", "dest": f"D{n:02d}",
                    "dest_name": f"Airport {n}", "sched_dep_utc": sched, "status_rank": rank,
                    "status": statuses[rank - 1], "cancelled": rank == 4,
                }  # fmt: skip
                if rank in (2, 3):
                    flight["dep_delay"] = rng.randint(-5, 90)
                flights.append(flight)
    return flights
