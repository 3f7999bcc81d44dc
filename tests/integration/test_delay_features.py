"""The delay-risk features and model on small hand-made frames (Spark, no service): the leakage
guard first (a flight's own outcome never reaches its features), then what each feature
counts, then the model, its baselines and its metrics."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from pipelines.transform import delay_features as DF
from pipelines.transform import delay_model as DM
from pipelines.transform import delay_scoring

SCHEMA = T.StructType([
    T.StructField("flight_key", T.StringType()), T.StructField("carrier", T.StringType()),
    T.StructField("origin", T.StringType()), T.StructField("dest", T.StringType()),
    T.StructField("distance", T.LongType()), T.StructField("tailnum", T.StringType()),
    T.StructField("sched_dep_utc", T.TimestampType()),
    T.StructField("dep_time_utc", T.TimestampType()), T.StructField("dep_delay", T.IntegerType()),
    T.StructField("arr_delay", T.IntegerType()), T.StructField("status_rank", T.IntegerType()),
    T.StructField("cancelled", T.BooleanType()),
])  # fmt: skip
WEATHER = "origin string, hour_utc timestamp, visib_km double, wind_speed_kmh double, " \
          "precip_mm double, temp_c double"  # fmt: skip
T0 = datetime(2013, 1, 2, 15, 0)  # 10:00 in New York (EST)
TARGET = "T"  # scheduled 17:30 UTC: scored at 15:30, its scoring hour H = 15:00


def flight(key, sched, delay=None, carrier="UA", origin="EWR", tail=None, dep=None, **kw):
    """A flight scheduled at T0 + ``sched`` hours, departing ``delay`` min late (None: not
    departed / cancelled)."""
    s = T0 + timedelta(hours=sched)
    dep = dep if dep is not None else (None if delay is None else s + timedelta(minutes=delay))
    return {"flight_key": key, "carrier": carrier, "origin": origin, "dest": "ORD",
            "distance": 719, "tailnum": tail, "sched_dep_utc": s, "dep_time_utc": dep,
            "dep_delay": delay, "arr_delay": kw.get("arr_delay"),
            "status_rank": 1 if delay is None else 3,
            "cancelled": kw.get("cancelled", False)}  # fmt: skip


def day(**target) -> list[dict]:
    return [
        flight("A", -4.0, 30, tail="N1"),  # departs 11:30 UTC: before H - 3 h
        flight("B", -2.5, 40),  # departs 13:10: within the 3 h before H
        flight("C", -1.5, 5, carrier="DL"),  # departs 13:35
        flight("D", -0.5, 90),  # departs 16:00: after H, unknown at scoring time
        flight("E", -1.0, None),  # scheduled 14:00, not departed: backlog
        flight("P", -0.9, 50, tail="N9"),  # the target's aircraft, departs 14:56 (before 15:30)
        flight(TARGET, 2.5, **({"delay": 12, "tail": "N9"} | target)),
    ]


def frame(spark, rows: list[dict]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def weather(spark) -> DataFrame:
    rows = [
        ("EWR", T0 - timedelta(hours=1), 16.09, 10.0, 0.0, 3.0),
        ("EWR", T0 + timedelta(hours=2), 0.4, 40.0, 5.0, 1.0),
    ]  # the scheduled hour's
    return spark.createDataFrame(rows, WEATHER)


def features_of(spark, rows: list[dict], key: str = TARGET) -> dict:
    out = DF.features(frame(spark, rows), weather(spark)).where(f"flight_key = '{key}'")
    return out.collect()[0].asDict()


def week(rows: list[dict], k: int) -> list[dict]:
    """``rows`` ``k`` weeks later (the same weekday and hours), keys and tails renamed."""
    shift = timedelta(days=7 * k)
    return [{**r, "flight_key": f"{k}{r['flight_key']}",
             "tailnum": r["tailnum"] and f"{r['tailnum']}-{k}",
             "sched_dep_utc": r["sched_dep_utc"] + shift,
             "dep_time_utc": r["dep_time_utc"] and r["dep_time_utc"] + shift}
            for r in rows]  # fmt: skip


def test_a_flights_own_outcome_never_changes_its_features(spark) -> None:
    """The same day in 5 January weeks, its target flight's own departure, delay, status and
    arrival changed in each (one Spark computation): the same features every week."""
    owns = ({}, {"delay": 300}, {"delay": None, "cancelled": True}, {"delay": -10},
            {"delay": 12, "arr_delay": 400})  # fmt: skip
    rows = [r for k, own in enumerate(owns) for r in week(day(**own), k)]
    feats = DF.features(frame(spark, rows), weather(spark)).where("flight_key LIKE '%T'")
    found = sorted((r.asDict() for r in feats.collect()), key=lambda r: r["flight_key"])
    assert len(found) == len(owns)
    assert set(found[0]) == set(DF.COLUMNS) and not set(found[0]) & set(DF.OWN_OUTCOME)
    moving = ("flight_key", "scoring_time", "sched_dep_utc", "weather_known", *DF.WEATHER_MEASURES)
    same = [{k: v for k, v in f.items() if k not in moving} for f in found]
    assert all(s == same[0] for s in same), same
    assert same[0]["dep_n_3h"] == 3.0


def test_the_guard_refuses_a_feature_table_with_the_flights_own_outcome(spark) -> None:
    feats = DF.features(frame(spark, day()), weather(spark))
    with pytest.raises(ValueError, match="dep_delay"):
        DF.guard(feats.join(frame(spark, day()).select("flight_key", "dep_delay"), "flight_key"))


def test_the_origins_history_counts_only_departures_before_the_scoring_hour(spark) -> None:
    f = features_of(spark, day())
    # H = 15:00: the hour before it [14:00, 15:00) holds P (14:56); the 3 h [12:00, 15:00)
    # B (13:10), C (13:35), P; A (11:30) is older, D (16:00) is after H
    assert (f["dep_n_1h"], f["dep_delay_1h"]) == (1.0, 50.0)
    assert (f["dep_n_3h"], f["dep_delay_3h"]) == (3.0, pytest.approx(95 / 3))
    assert f["late_share_3h"] == pytest.approx(2 / 3)
    assert (f["day_n"], f["day_delay"]) == (4.0, pytest.approx(125 / 4))  # A, B, C, P today
    assert f["backlog_3h"] == 2.0  # E (never) and D (scheduled 14:30, departs at 16:00)
    assert (f["carrier_n_3h"], f["carrier_delay_3h"]) == (2.0, 45.0)  # UA: B, P
    # another flight's departure moved from after H to before it: now known
    rows = [r if r["flight_key"] != "D" else flight("D", -0.5, 20) for r in day()]
    assert features_of(spark, rows)["dep_n_1h"] == 2.0


def test_the_aircraft_and_the_weather_are_as_known_at_scoring_time(spark) -> None:
    f = features_of(spark, day())
    assert (f["tail_prev_known"], f["tail_prev_delay"], f["tail_prev_pending"]) == (1.0, 50.0, 0.0)
    assert f["tail_gap_h"] == pytest.approx(3.4)
    # the previous flight of the aircraft leaves after the scoring time: pending, delay unknown
    rows = [r if r["flight_key"] != "P" else flight("P", -0.9, 100, tail="N9") for r in day()]
    g = features_of(spark, rows)
    assert (g["tail_prev_known"], g["tail_prev_delay"], g["tail_prev_pending"]) == (0.0, 0.0, 1.0)
    # the weather of H - 1 (14:00 UTC), not of the scheduled hour (the storm at 17:00)
    assert (f["weather_known"], f["visib_km"], f["precip_mm"]) == (1.0, 16.09, 0.0)
    assert (f["local_hour"], f["weekday"], f["month"]) == (12, 3, 1)  # 12:30 EST, Wednesday


def synthetic_rows(n_days: int = 6) -> list[dict]:
    """Flights over ``n_days`` days whose lateness follows the origin's recent delays."""
    rows = []
    for d in range(n_days):
        for i in range(40):
            late = (i % 4 == 0) or (i > 30 and d % 2 == 0)
            carrier, origin = ("UA", "DL", "AA")[i % 3], ("EWR", "JFK")[i % 2]
            rows.append(flight(f"F{d}-{i}", d * 24 + i * 0.3, 40 if late else 0,
                               carrier=carrier, origin=origin, tail=f"N{i % 7}"))  # fmt: skip
    return rows


def synthetic(spark, n_days: int = 6) -> DataFrame:
    return frame(spark, synthetic_rows(n_days))


def test_the_model_scores_in_0_1_and_is_judged_with_its_baselines(spark) -> None:
    flights = synthetic(spark)
    labelled = DF.labelled(DF.features(flights, weather(spark)), flights).cache()
    train, test = DM.split(labelled, "2013-01-07")
    assert train.count() + test.count() == labelled.count() == 240
    assert test.count() == 40  # the last local day only (2013-01-07, 10:00 to 21:42 EST)
    model = DM.train(train)
    scored = DM.Baselines.apply(DM.baselines(train), DM.score(model, test)).cache()
    risks = [r["delay_risk"] for r in scored.select("delay_risk").collect()]
    assert risks and all(0.0 <= r <= 1.0 for r in risks)
    overall = DM.evaluate(scored, "p_overall")
    assert overall["auc"] == 0.5 and overall["n"] == 40
    rate = train.agg({"late": "avg"}).first()[0]
    assert all(r["p_overall"] == pytest.approx(rate) for r in scored.collect())
    bands = DM.calibration(scored, "delay_risk")
    assert sum(b["n"] for b in bands) == 40
    assert all(0 <= b["observed"] <= 1 for b in bands)
    one_class = DM.evaluate(scored.where("late = 1"), "delay_risk")
    assert math.isnan(one_class["auc"]) and one_class["brier"] >= 0

    # the driver's scoring (the lake path's) gives the MLlib transform's probabilities
    scorer = delay_scoring.LinearScorer.from_model(model)
    rows = synthetic_rows() + day()
    sky = [r.asDict() for r in weather(spark).collect()]
    mine = {f["flight_key"]: f for f in delay_scoring.features(rows, sky)}
    theirs = DF.features(frame(spark, rows), weather(spark))
    for r in DM.score(model, theirs).collect():
        assert scorer.score(mine[r.flight_key]) == pytest.approx(r.delay_risk, abs=1e-9)


def test_the_drivers_features_are_the_sparks(spark) -> None:
    """``delay_scoring.features`` (plain Python, what the lake path scores with) gives every
    feature of every flight as ``delay_features.features`` (Spark, what the model learns)."""
    rows = synthetic_rows() + day() + week(day(), 1)
    sky = [r.asDict() for r in weather(spark).collect()]
    mine = {f["flight_key"]: f for f in delay_scoring.features(rows, sky)}
    theirs = {r.flight_key: r.asDict() for r in
              DF.features(frame(spark, rows), weather(spark)).collect()}  # fmt: skip
    assert sorted(mine) == sorted(theirs) and len(mine) == len(rows)
    for key, spark_row in theirs.items():
        assert set(mine[key]) == set(DF.COLUMNS)
        for column in DF.COLUMNS:
            want = spark_row[column]
            want = pytest.approx(want) if isinstance(want, int | float) else want
            assert mine[key][column] == want, (key, column)
    assert {f["backlog_3h"] for f in mine.values()} != {0.0}  # the frames exercise them
    assert {f["tail_prev_known"] for f in mine.values()} == {0.0, 1.0}
