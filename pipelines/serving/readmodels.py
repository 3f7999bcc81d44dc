"""The serving collections of ``docs/data-model.md``: their names and ``_id`` keys.

Spark-free and pymongo-free, so the jobs that write the documents (``serving``) and the
dashboard that reads them share one definition of every collection name and key format.

- ``flights_by_hour``: bucket of the flights of one (origin, scheduled departure hour UTC),
  ``_id`` = :func:`hour_key`; the live board reads the hours around the clock.
- ``kpi_hourly``: the KPI row of one (origin, scheduled departure hour UTC), ``_id`` =
  :func:`hour_key` (the same row ``kpi_daily`` carries); the tiles of the day read the hours of
  the day.
- ``flights_by_hour_hot``: the same buckets as the stream's live board writes them within a
  second, same ``_id``; an hour's ``kpi_hourly`` row of the hot path is derived from it when
  read (:data:`HOT_OF`, :func:`hot_view`, :func:`resolve`).
- ``kpi_daily``: bucket of every KPI row of one local date, ``_id`` = ``YYYY-MM-DD``.
- ``kpi_route_monthly``: bucket of every route of one month, ``_id`` = ``YYYY-MM``.
- ``kpi_profile``: the computed whole-period figures, one document ``_id`` = :data:`PROFILE_ID`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipelines.core.domain import (
    HOUR_KEY_PY,
    MEASURES,
    NEW_YORK,
    ORIGINS,
    STATUS_NAME,
    STATUS_RANK,
)

BOARD = "flights_by_hour"
KPI_DAILY = "kpi_daily"
KPI_HOURLY = "kpi_hourly"
BOARD_HOT = "flights_by_hour_hot"
KPI_ROUTE_MONTHLY = "kpi_route_monthly"
KPI_PROFILE = "kpi_profile"
WEATHER_HOURLY = "weather_hourly"
AIRLINES = "airlines"
REJECTS = "rejects"
STATE = "pipeline_state"
RUNS = "pipeline_runs"
HEALTH = "pipeline_health"  # per job, folded from the ledger by the runner (read by _id)
PROFILE_ID = "all"

# the serving collections the jobs write (pipeline_state and the ledger are job state)
SERVING = (
    BOARD,
    BOARD_HOT,
    KPI_HOURLY,
    KPI_DAILY,
    KPI_ROUTE_MONTHLY,
    KPI_PROFILE,
    WEATHER_HOURLY,
    AIRLINES,
    REJECTS,
)

# the only secondary index: the rejects panel reads the newest first (MongoDB uses it)
INDEXES: dict[str, list[list[tuple[str, int]]]] = {REJECTS: [[("at", -1)]]}


# a flight inside its hour's ``flights_by_hour`` bucket: the sort keys first (scheduled
# departure, then key)
FLIGHT_FIELDS = (
    "sched_dep_utc", "flight_key", "carrier", "carrier_name", "flight", "tailnum", "plane_year",
    "dest", "dest_name", "dest_lat", "dest_lon", "dest_known", "distance", "local_hour",
    "weekday", "sched_arr_utc", "dep_time_utc", "dep_delay", "arr_time_utc", "arr_delay",
    "air_time", "status_rank", "status", "cancelled", "last_event_time", "weather",
)  # fmt: skip
# what a model wrote on a board flight (``serving.risk``: the lake path's documents carry it,
# the hot path does not compute it): not a fact of the flight (``facts`` ignores it), and
# carried by :func:`resolve` onto the hot document when that one is shown
SCORE_FIELDS = ("delay_risk",)
# what a board flight shows that its reader derives from ``status_rank`` (a status name does
# not grow with its rank, so a hot board bucket's monotone map does not hold it)
RANK_FIELDS = ("status", "cancelled")

# The two writers of a bucket: the exact lake path writes it in BOARD and its hour's row in
# KPI_HOURLY; the hot path (the live board, seconds after an event) writes the bucket in
# BOARD_HOT under the same ``_id``, and the hour's row is derived from that bucket when read
# (an hour's KPIs are a function of its bucket's flights alone: :func:`hour_row`), so HOT_OF
# names BOARD_HOT for both. Each document has one writer: FerretDB v1.24 applies an update as
# a read, then a write, outside a transaction, so two writers of one document lose each
# other's updates (measured: 160 of 450 concurrent ``$max`` upserts of one document kept;
# FerretDB#3040). A reader takes, of the two, the one with the higher ``version`` (what the
# bucket knows, see ``serving.documents.facts``): :func:`resolve`. A hot board bucket holds its
# flights as a map (:func:`slot_key` -> the flight's known fields), each field raised with
# ``$max`` by the live board (``jobs/flights_board.py``), which :func:`hot_board` turns into
# the lake path's shape.
HOT_OF = {BOARD: BOARD_HOT, KPI_HOURLY: BOARD_HOT}
BOARD_TOP = ("_id", "origin", "hour_utc", "date")  # a hot board bucket's fields beside its map
BOARD_BEFORE = timedelta(hours=1)  # the live board shows the flights scheduled within an hour
BOARD_AFTER = timedelta(hours=1)  # of the replay clock, either side


def hot_view(collection: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A hot board bucket (read from ``HOT_OF[collection]``) in the shape of ``collection``'s
    documents: the board bucket (:func:`hot_board`) or its hour's KPI row (:func:`hour_row`)."""
    board = hot_board(doc)
    return board if collection == BOARD else hour_row(board)


def resolve(lake: dict[str, Any] | None, hot: dict[str, Any] | None) -> dict[str, Any] | None:
    """A bucket as its readers see it: the lake path's document or the hot path's (in the
    lake's shape: :func:`hot_view`), whichever knows more (a higher ``version``; a tie keeps
    the lake's); None when neither exists."""
    if lake is None or (hot is not None and hot.get("version", 0) > lake.get("version", -1)):
        return hot if lake is None else _scored({**lake, **hot}, lake)
    return lake


def _scored(shown: dict[str, Any], lake: dict[str, Any]) -> dict[str, Any]:
    """``shown`` (the hot document won) with the :data:`SCORE_FIELDS` of the lake document's
    flights carried onto the same flights (by ``flight_key``) that lack them: a model's score
    is written by the lake path only, and a newer event of the bucket must not hide it. An
    hour's KPI row (its ``flights`` a count, not a list) is returned as it is."""
    if not isinstance(lake.get("flights"), list):
        return shown
    scores = {
        f.get("flight_key"): {k: f[k] for k in SCORE_FIELDS if k in f}
        for f in lake["flights"] if isinstance(f, dict)
    }  # fmt: skip
    if not any(scores.values()) or not isinstance(shown.get("flights"), list):
        return shown
    flights = [{**scores.get(f.get("flight_key"), {}), **f} for f in shown["flights"]]
    return {**shown, "flights": flights}


def slot_key(flight_key: str) -> str:
    """A flight's key in a board's hot map: a MongoDB field name holds no ``.`` and starts
    with no ``$`` (``%`` escaped first, so two keys never meet)."""
    return flight_key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def board_flight(known: dict[str, Any]) -> dict[str, Any]:
    """A flight of a board's hot map (its known fields, ``status_rank`` among them) as the
    lake path writes it: :data:`FLIGHT_FIELDS` in order, status and cancelled derived from the
    rank as ``flight_state.derive`` does, unknown fields absent."""
    rank = known.get("status_rank")
    derived = {}
    if rank is not None:
        derived = {"status": STATUS_NAME.get(rank), "cancelled": rank == STATUS_RANK["cancelled"]}
    merged = {**known, **derived}
    return {k: merged[k] for k in FLIGHT_FIELDS if merged.get(k) is not None}


def facts(flight: dict[str, Any]) -> int:
    """What a board flight knows (``serving.documents.facts`` in Python): its status rank
    plus its known :data:`FLIGHT_FIELDS`."""
    return (flight.get("status_rank") or 0) + sum(flight.get(k) is not None for k in FLIGHT_FIELDS)


def hot_board(doc: dict[str, Any]) -> dict[str, Any]:
    """A hot board bucket (``flights``: a map of known fields by :func:`slot_key`) -> the
    document the lake path writes for the same flights: ``n``, ``flights`` sorted as its
    ``sort_array`` sorts them (scheduled departure, then key: unique), ``version`` (the sum
    of :func:`facts`), and the bucket's other fields (``_id``, ``origin``, ``updated_at``...)."""
    flights = sorted(
        (board_flight(f) for f in doc["flights"].values()),
        key=lambda f: (f["sched_dep_utc"], f["flight_key"]),
    )
    rest = {k: v for k, v in doc.items() if k != "flights"}
    return {**rest, "n": len(flights), "flights": flights, "version": sum(map(facts, flights))}


def measures(flights: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The measures of ``transform.kpis.measures`` in Python over board flights (the lake
    path's shape, :func:`board_flight`)."""
    flights = list(flights)
    departed = [f for f in flights if f.get("dep_time_utc") is not None]
    dep = [f["dep_delay"] for f in flights if f.get("dep_delay") is not None]
    arr = [f["arr_delay"] for f in flights if f.get("arr_delay") is not None]
    values = {
        "flights": len(flights),
        "departed": len(departed),
        "cancelled": sum(f.get("status_rank") == STATUS_RANK["cancelled"] for f in flights),
        "on_time": sum(f.get("dep_delay") is not None and f["dep_delay"] <= 15 for f in departed),
        "delayed_60": sum(f.get("dep_delay") is not None and f["dep_delay"] > 60 for f in departed),
        "dep_delay_sum": sum(dep),
        "dep_delay_n": len(dep),
        "arr_delay_sum": sum(arr),
        "arr_delay_n": len(arr),
    }
    return {m: values[m] for m in MEASURES}


def hour_row(board: dict[str, Any]) -> dict[str, Any]:
    """A board bucket in the lake path's shape (:func:`hot_board`) -> its hour's ``kpi_hourly``
    row: the bucket's fields, ``local_hour`` and ``weekday`` (the same for every flight of an
    hour), the :func:`measures` of its flights, the bucket's ``version`` and ``updated_at``.
    The lake path computes the same row in Spark (``kpis.kpi_hourly``,
    ``documents.hourly_docs``); the tests hold the two equal."""
    flights = board["flights"]
    first = flights[0] if flights else {}
    row = {k: board.get(k) for k in ("_id", "origin", "hour_utc", "date")}
    row |= {"local_hour": first.get("local_hour"), "weekday": first.get("weekday")}
    row |= measures(flights)
    row |= {"version": board.get("version", 0), "updated_at": board.get("updated_at")}
    return row


def day_doc(day: str, boards: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The board buckets of the local date ``day`` (the lake path's shape, as
    :func:`resolve` shows them; None for a bucket neither path wrote) -> the rows of its
    ``kpi_daily`` document: ``hours`` (:func:`hour_row` of each bucket that has flights),
    ``carriers`` (per carrier and origin: the first known ``carrier_name``) and ``weather``
    (per origin, visibility band, precipitation and wind band, over the flights whose weather
    is known), sorted as the lake path sorts them (``documents.daily_docs``); ``flights``,
    ``version`` (the buckets' sum) and ``updated_at`` (their newest). The lake path computes
    the same rows in Spark (``kpis.kpi_carrier_daily``, ``kpis.kpi_weather_daily``); the
    tests hold them equal, so the page can show a live date's airlines and weather from the
    buckets the stream raises within seconds instead of waiting for the lake path's
    document."""
    hours: list[dict[str, Any]] = []
    carriers: dict[tuple, list[dict[str, Any]]] = {}
    weather: dict[tuple, list[dict[str, Any]]] = {}
    stamps, version = [], 0
    for board in boards:
        if not board or not board.get("flights"):
            continue
        row = hour_row(board)
        hours.append({k: row[k] for k in ("origin", "hour_utc", "local_hour", *MEASURES)})
        version += board.get("version", 0)
        if board.get("updated_at") is not None:
            stamps.append(board["updated_at"])
        origin = board.get("origin")  # a bucket's flights leave out its origin
        for f in board["flights"]:
            carriers.setdefault((f.get("carrier"), origin), []).append(f)
            known = f.get("weather") or {}
            if known.get("visib_band") is not None:
                bands = (origin, known["visib_band"], bool(known.get("precip")),
                         known.get("wind_band") or "unknown")  # fmt: skip
                weather.setdefault(bands, []).append(f)
    by_carrier = []
    for (carrier, origin), fs in carriers.items():
        name = next((f["carrier_name"] for f in fs if f.get("carrier_name") is not None), None)
        row = {"carrier": carrier, "origin": origin}  # a name unknown is left out, as written
        by_carrier.append(row | ({} if name is None else {"carrier_name": name}) | measures(fs))
    by_weather = [
        {"origin": o, "visib_band": v, "precip": p, "wind_band": w, **measures(fs)}
        for (o, v, p, w), fs in weather.items()
    ]  # fmt: skip
    return {
        "_id": day,
        "date": day,
        "flights": sum(h["flights"] for h in hours),
        "hours": sorted(hours, key=lambda h: (h["origin"], h["hour_utc"])),
        "carriers": sorted(by_carrier, key=lambda r: (r["carrier"] or "", r["origin"] or "")),
        "weather": sorted(
            by_weather, key=lambda r: (r["origin"], r["visib_band"], r["precip"], r["wind_band"])
        ),  # fmt: skip
        "version": version,
        "updated_at": max(stamps, default=None),
    }


def newer_day(lake: dict[str, Any] | None, derived: dict[str, Any]) -> dict[str, Any]:
    """Of a date's ``kpi_daily`` document (``lake``, None when not written yet) and its rows
    derived from its buckets (:func:`day_doc`), the one to show: the derived rows unless its
    buckets count fewer flights than the document (a flight never leaves its bucket, and a
    bucket is read from the path that knows more: fewer means buckets are missing, as beyond
    the serving horizon)."""
    if lake is not None and derived.get("flights", 0) < lake.get("flights", 0):
        return lake
    return derived


def naive_utc(value: Any) -> Any:
    """Datetimes compared and stored as naive UTC (what pymongo writes as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def utc(value: Any) -> datetime | None:
    """A BSON date (naive = UTC), a pandas Timestamp (NaT: None) or an ISO string as an aware
    UTC datetime; None otherwise (the page and the alert rules read times through it)."""
    if isinstance(value, datetime):
        if value != value:  # NaT
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def hour_key(origin: str, hour: datetime) -> str:
    """``ORIGIN|YYYY-MM-DDTHH:MMZ``: the ``_id`` of an hour in ``flights_by_hour``,
    ``kpi_hourly`` and ``weather_hourly``."""
    return f"{origin}|{naive_utc(hour).strftime(HOUR_KEY_PY)}"


def board_window(
    clock: datetime, before: timedelta = BOARD_BEFORE, after: timedelta = BOARD_AFTER
) -> tuple[list[str], datetime, datetime]:
    """The ``flights_by_hour`` ids of the board around ``clock``, and its [start, end]."""
    start, end = clock - before, clock + after
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while hour <= end:
        keys += [hour_key(o, hour) for o in ORIGINS]
        hour += timedelta(hours=1)
    return keys, start, end


STREAM_PATHS = ("hot", "lake")  # the stream's queries: live board, lake path (sub-documents)


def stream_marks(state: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What moves when the stream has written (its ``pipeline_state`` document ``state``): the
    batch ids of its hot and lake paths. A document without them (a stream before issue 17)
    moves with ``last_batch_id`` and ``updated_at``; None when there is no document. The page's
    follower (``dashboard/live.py``) and the alerts service read again when they move."""
    if not state:
        return None
    ids = tuple((state.get(path) or {}).get("batch_id") for path in STREAM_PATHS)
    if any(i is not None for i in ids):
        return ids
    return ("legacy", state.get("last_batch_id"), state.get("updated_at"))


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
