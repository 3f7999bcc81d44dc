"""The features of the delay-risk model (issue 19, part 4): what is known of a flight when it
enters the board, pure ``DataFrame -> DataFrame``, with the leakage guard.

A flight is **scored at** ``scoring_time = sched_dep_utc - lead`` (``lead`` = the board lead, 2 h:
its ``scheduled`` event). Its features are built from three things only:

1. **its own schedule** (:data:`KNOWN_AT_SCORING`): carrier, origin, destination, distance and
   the scheduled departure (whence the local hour, ISO weekday, month). No other field of the
   flight is ever read: :func:`flight_part` selects exactly these before anything else, so its
   own departure, arrival, status or weather at departure (:data:`OWN_OUTCOME`) cannot reach a
   feature (``tests/unit/test_delay_features.py`` changes them and finds the features equal);
2. **the origin's departures before the scoring hour** ``H = hour(scoring_time) <= scoring_time``:
   other flights' departures whose actual time is before ``H`` (their hour ``<= H - 1``), per
   origin: the last hour's and last 3 hours' count, mean delay and share late, the local day's
   so far, and the backlog (flights scheduled in the 3 hours before ``H`` not departed at
   ``H``). A flight never leaves 2 h early (the earliest departure of 2013 is 43 min ahead of
   schedule), so its own departure is never among them;
3. **the origin's latest landed weather**: the hour ``H - 1`` (a weather file lands when its hour
   is over), its visibility, wind, precipitation, temperature; ``weather_known`` 0 when absent.

Nothing here depends on when it runs: the features of a flight are a function of the data
before its scoring time, so scoring a flight now, tomorrow or in a backfill gives the same row
(late data aside), and training and scoring use the same functions.

The label (:func:`labelled`): ``late`` = 1 when the departure was more than
:data:`LATE_MIN` minutes late (the FAA's on-time line, the dashboard's ``on_time``), over the
flights that departed; a cancelled flight has no label.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.core.domain import LOCAL_TZ

LEAD_MINUTES = 120  # replay.board_lead_minutes: a flight enters the board 2 h before departure
LATE_MIN = 15  # late = departure delay > 15 min
WINDOW_HOURS = 3  # the origin's recent departures: the 3 hours before the scoring hour

# the only fields of the flight itself a feature may read
KNOWN_AT_SCORING = (
    "flight_key", "carrier", "origin", "dest", "distance", "sched_dep_utc", "tailnum",
)  # fmt: skip
# what the flight itself does after it is scored: never read for its own features
OWN_OUTCOME = (
    "dep_time_utc", "dep_delay", "arr_time_utc", "arr_delay", "air_time", "status_rank",
    "status", "cancelled", "last_event_time", "weather", "sched_arr_utc",
)  # fmt: skip
# the origin's history fields read from *other* flights (departures before the scoring hour)
HISTORY_FIELDS = ("flight_key", "origin", "carrier", "tailnum", "sched_dep_utc", "dep_time_utc",
                  "dep_delay")  # fmt: skip

CATEGORICAL = ("carrier", "origin", "dest", "local_hour", "weekday")
NUMERIC = (
    "distance", "dep_n_1h", "dep_delay_1h", "dep_n_3h", "dep_delay_3h", "late_share_3h",
    "day_n", "day_delay", "day_late_share", "backlog_3h", "carrier_n_3h", "carrier_delay_3h",
    "tail_prev_known", "tail_prev_delay", "tail_prev_pending", "tail_gap_h",
    "weather_known", "visib_km", "wind_speed_kmh", "precip_mm", "temp_c",
)  # fmt: skip
FEATURES = (*CATEGORICAL, *NUMERIC)
# the feature table: key, times, calendar, features
COLUMNS = ("flight_key", "scoring_time", "sched_dep_utc", "month", *FEATURES)
WEATHER_MEASURES = ("visib_km", "wind_speed_kmh", "precip_mm", "temp_c")


def _hours(column: str | Column, n: int) -> Column:
    col = F.col(column) if isinstance(column, str) else column
    return col + F.make_interval(hours=F.lit(n))


def flight_part(flights: DataFrame, lead_minutes: int = LEAD_MINUTES) -> DataFrame:
    """The flights as they are known at scoring time: :data:`KNOWN_AT_SCORING` only, with
    ``scoring_time``, its hour ``score_hour``, and the calendar of the scheduled departure
    in New York (``local_hour``, ISO ``weekday``, ``month`` 1..12)."""
    local = F.from_utc_timestamp("sched_dep_utc", LOCAL_TZ)
    scoring = F.col("sched_dep_utc") - F.make_interval(mins=F.lit(lead_minutes))
    return flights.select(*KNOWN_AT_SCORING).select(
        *KNOWN_AT_SCORING,
        scoring.alias("scoring_time"),
        F.date_trunc("hour", scoring).alias("score_hour"),
        F.hour(local).alias("local_hour"),
        (((F.dayofweek(local) + 5) % 7) + 1).alias("weekday"),
        F.month(local).alias("month"),
    )


def origin_hours(flights: DataFrame, hours: DataFrame) -> DataFrame:
    """Per (origin, scoring hour ``H`` of ``hours``): what the origin's departures *before*
    ``H`` say (departures with an actual time, whatever flight they are): ``dep_n_1h``,
    ``dep_delay_1h`` (mean, min; 0 when none), ``dep_n_3h``, ``dep_delay_3h``,
    ``late_share_3h``, the local day's so far (``day_n``, ``day_delay``, ``day_late_share``),
    and ``backlog_3h``: flights scheduled in the 3 hours before ``H`` not departed at ``H``."""
    past = flights.select(*HISTORY_FIELDS)
    dep = past.where(F.col("dep_time_utc").isNotNull() & F.col("dep_delay").isNotNull())
    dep = dep.select(
        "origin", F.date_trunc("hour", "dep_time_utc").alias("dep_hour"),
        F.col("dep_delay").cast("double").alias("delay"),
        (F.col("dep_delay") > LATE_MIN).cast("double").alias("late"),
    )  # fmt: skip
    targets = hours.select("origin", F.col("score_hour").alias("H")).distinct()
    local_day = F.to_date(F.from_utc_timestamp("H", LOCAL_TZ))
    # the last WINDOW_HOURS hours: each departure counts for the 3 scoring hours after its hour
    lag = F.explode(F.sequence(F.lit(1), F.lit(WINDOW_HOURS))).alias("k")
    window = (
        dep.select("origin", "dep_hour", "delay", "late", lag)
        .withColumn("H", F.col("dep_hour") + F.make_interval(hours=F.col("k")))
        .groupBy("origin", "H")
        .agg(
            F.sum(F.when(F.col("k") == 1, 1).otherwise(0)).alias("dep_n_1h"),
            F.sum(F.when(F.col("k") == 1, F.col("delay"))).alias("_delay_1h"),
            F.count(F.lit(1)).alias("dep_n_3h"),
            F.sum("delay").alias("_delay_3h"),
            F.sum("late").alias("_late_3h"),
        )
    )
    # the local day so far: the departures of H's local date before H, as a running sum over
    # the origin's hours (a scoring hour sorts before the departures of its own hour)
    hourly = dep.groupBy("origin", F.col("dep_hour").alias("H")).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum("delay").alias("s"),
        F.sum("late").alias("l"),
        F.lit(1).alias("t"),
    )
    points = hourly.unionByName(targets.select(
        "origin", "H", *[F.lit(0).cast(c).alias(n) for n, c in
                         (("n", "long"), ("s", "double"), ("l", "double"))],
        F.lit(0).alias("t"),
    ))  # fmt: skip
    so_far = (
        Window.partitionBy("origin", "lday")
        .orderBy("H", "t")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    day = (
        points.withColumn("lday", local_day)
        .select("origin", "H", "t", *[F.sum(c).over(so_far).alias(a) for c, a in
                                      (("n", "day_n"), ("s", "_day_delay"), ("l", "_day_late"))])
        .where(F.col("t") == 0).drop("t")
    )  # fmt: skip
    # backlog: scheduled in [H - 3 h, H), not departed before H (cancelled ones included)
    sched = past.select(
        "origin",
        F.date_trunc("hour", "sched_dep_utc").alias("s_hour"),
        "sched_dep_utc",
        "dep_time_utc",
        lag,
    ).withColumn("H", F.col("s_hour") + F.make_interval(hours=F.col("k")))
    backlog = (
        sched.where(F.col("dep_time_utc").isNull() | (F.col("dep_time_utc") >= F.col("H")))
        .groupBy("origin", "H").agg(F.count(F.lit(1)).alias("backlog_3h"))
    )  # fmt: skip
    out = targets.join(window, ["origin", "H"], "left").join(day, ["origin", "H"], "left")
    out = out.join(backlog, ["origin", "H"], "left")
    n1, n3, nd = (F.coalesce(F.col(c), F.lit(0)) for c in ("dep_n_1h", "dep_n_3h", "day_n"))
    return out.select(
        "origin", F.col("H").alias("score_hour"),
        n1.cast("double").alias("dep_n_1h"), _mean("_delay_1h", n1).alias("dep_delay_1h"),
        n3.cast("double").alias("dep_n_3h"), _mean("_delay_3h", n3).alias("dep_delay_3h"),
        _mean("_late_3h", n3).alias("late_share_3h"),
        nd.cast("double").alias("day_n"), _mean("_day_delay", nd).alias("day_delay"),
        _mean("_day_late", nd).alias("day_late_share"),
        F.coalesce(F.col("backlog_3h"), F.lit(0)).cast("double").alias("backlog_3h"),
    )  # fmt: skip


def carrier_hours(flights: DataFrame, hours: DataFrame) -> DataFrame:
    """Per (origin, carrier, scoring hour ``H``): the carrier's departures from the origin in
    the 3 hours before ``H``: ``carrier_n_3h`` and their mean delay ``carrier_delay_3h``."""
    dep = flights.where(F.col("dep_time_utc").isNotNull() & F.col("dep_delay").isNotNull())
    lag = F.explode(F.sequence(F.lit(1), F.lit(WINDOW_HOURS))).alias("k")
    out = (
        dep.select("origin", "carrier", F.date_trunc("hour", "dep_time_utc").alias("h"),
                   F.col("dep_delay").cast("double").alias("delay"), lag)
        .withColumn("score_hour", F.col("h") + F.make_interval(hours=F.col("k")))
        .groupBy("origin", "carrier", "score_hour")
        .agg(F.count(F.lit(1)).alias("n"), F.avg("delay").alias("d"))
    )  # fmt: skip
    return out.select("origin", "carrier", "score_hour",
                      F.col("n").cast("double").alias("carrier_n_3h"),
                      F.col("d").cast("double").alias("carrier_delay_3h"))  # fmt: skip


TAIL_GAP_MAX = 24.0  # hours: no earlier flight of the aircraft within a day


def aircraft(flights: DataFrame, lead_minutes: int = LEAD_MINUTES) -> DataFrame:
    """Per flight (``flight_key``): its aircraft's previous departure from New York (the same
    ``tailnum``, the flight scheduled just before it), as known at the flight's scoring time:
    ``tail_gap_h`` (hours between the two scheduled departures, at most
    :data:`TAIL_GAP_MAX`), ``tail_prev_known`` 1 with ``tail_prev_delay`` when that flight had
    departed before the scoring time, ``tail_prev_pending`` 1 when it was scheduled before the
    scoring time and had not departed (the aircraft runs late). Only the *previous* row of the
    aircraft is read (``lag``): never the flight's own departure."""
    by_tail = Window.partitionBy("tailnum").orderBy("sched_dep_utc", "flight_key")
    scoring = F.col("sched_dep_utc") - F.make_interval(mins=F.lit(lead_minutes))
    prev = flights.where(F.col("tailnum").isNotNull()).select(
        "flight_key", scoring.alias("t"), "sched_dep_utc",
        F.lag("sched_dep_utc").over(by_tail).alias("p_sched"),
        F.lag("dep_time_utc").over(by_tail).alias("p_dep"),
        F.lag("dep_delay").over(by_tail).alias("p_delay"),
    )  # fmt: skip
    gap = (F.unix_timestamp("sched_dep_utc") - F.unix_timestamp("p_sched")) / 3600.0
    within = F.col("p_sched").isNotNull() & (gap < TAIL_GAP_MAX)
    known = within & F.col("p_dep").isNotNull() & (F.col("p_dep") < F.col("t"))
    pending = within & (F.col("p_sched") < F.col("t")) & ~known
    return prev.select(
        "flight_key",
        F.when(within, F.least(gap, F.lit(TAIL_GAP_MAX))).otherwise(TAIL_GAP_MAX)
        .cast("double").alias("tail_gap_h"),
        known.cast("double").alias("tail_prev_known"),
        F.when(known, F.col("p_delay")).otherwise(0).cast("double").alias("tail_prev_delay"),
        pending.cast("double").alias("tail_prev_pending"),
    )  # fmt: skip


def _mean(total: str, n: Column) -> Column:
    """``total / n``, 0 when there is nothing (no departure: nothing known to be late)."""
    return F.when(n > 0, F.col(total) / n).otherwise(F.lit(0.0)).cast("double")


def weather_at(hours: DataFrame, weather: DataFrame) -> DataFrame:
    """Per (origin, scoring hour ``H``): the origin's weather of the hour ``H - 1`` (the latest
    landed at ``H``), :data:`WEATHER_MEASURES` (0 when unknown) and ``weather_known``."""
    w = weather.select(
        "origin", _hours("hour_utc", 1).alias("score_hour"), *WEATHER_MEASURES
    ).dropDuplicates(["origin", "score_hour"])
    targets = hours.select("origin", "score_hour").distinct()
    joined = targets.join(w, ["origin", "score_hour"], "left")
    return joined.select(
        "origin", "score_hour",
        F.col("visib_km").isNotNull().cast("double").alias("weather_known"),
        *[F.coalesce(F.col(m).cast("double"), F.lit(0.0)).alias(m) for m in WEATHER_MEASURES],
    )  # fmt: skip


def features(
    flights: DataFrame,
    weather: DataFrame,
    lead_minutes: int = LEAD_MINUTES,
    history: DataFrame | None = None,
) -> DataFrame:
    """One row per flight of ``flights`` (clean flights, or any frame with
    :data:`KNOWN_AT_SCORING` and :data:`HISTORY_FIELDS`): :data:`COLUMNS`, from its schedule,
    the origin's departures before its scoring hour (of ``history``, default ``flights``
    itself: every flight of the same lake) and the latest landed weather (``weather``: clean
    weather rows, ``origin``, ``hour_utc`` and the measures). Checked by :func:`guard`."""
    own = flight_part(flights, lead_minutes)
    history = history if history is not None else flights
    past = origin_hours(history, own)
    carrier = carrier_hours(history, own)
    tail = aircraft(history, lead_minutes)
    sky = weather_at(own, weather)
    out = (
        own.join(past, ["origin", "score_hour"], "left")
        .join(carrier, ["origin", "carrier", "score_hour"], "left")
        .join(tail, "flight_key", "left")
        .join(sky, ["origin", "score_hour"], "left")
        .fillna(
            0.0,
            subset=[
                "carrier_n_3h",
                "carrier_delay_3h",
                "tail_prev_known",
                "tail_prev_delay",
                "tail_prev_pending",
            ],
        )
        .fillna(TAIL_GAP_MAX, subset=["tail_gap_h"])
        .select(*COLUMNS)
    )
    return guard(out)


def guard(frame: DataFrame) -> DataFrame:
    """The leakage guard: refuse a feature table holding a field of the flight's own outcome
    (:data:`OWN_OUTCOME`) or a feature that is not one of :data:`FEATURES`."""
    leaked = sorted(set(frame.columns) & set(OWN_OUTCOME))
    unknown = sorted(set(frame.columns) - set(COLUMNS))
    if leaked or unknown:
        raise ValueError(
            f"delay-risk features hold the flight's own outcome {leaked} or unknown columns "
            f"{unknown}: only {list(COLUMNS)} are known at scoring time"
        )
    return frame


def labelled(features_: DataFrame, flights: DataFrame) -> DataFrame:
    """The feature rows of the flights that departed, with ``late`` (1.0 when the departure
    was more than :data:`LATE_MIN` min late, else 0.0): what the model learns and is judged
    on. Cancelled and not yet departed flights have no label and are left out."""
    outcome = flights.where(F.col("dep_delay").isNotNull()).select(
        "flight_key", (F.col("dep_delay") > LATE_MIN).cast("double").alias("late")
    )
    return features_.join(outcome, "flight_key")
