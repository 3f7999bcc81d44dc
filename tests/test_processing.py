"""The processing jobs through the real stack, checked against an independent computation.

A window of 2013 is replayed (Kafka events, weather files, reference snapshots), the three
jobs run, and every KPI document is compared with measures computed here with pandas straight
from the raw CSVs (no pipeline code). Then: a rerun changes nothing, and a stream job
SIGKILLed mid-run and restarted ends in the same state as an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipelines import mongo, pipeline, readmodels, sources
from pipelines.config import Settings

from .conftest import isolate, write_parameters

pytestmark = pytest.mark.integration

START = datetime(2013, 1, 1, tzinfo=UTC)
END = datetime(2013, 1, 4, tzinfo=UTC)  # 2013-01-01 .. 2013-01-03
LEAD = timedelta(hours=2)
ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico",
         "SJU": "America/Puerto_Rico", "STT": "America/St_Thomas"}  # fmt: skip
MEASURES = ["flights", "departed", "cancelled", "on_time", "delayed_60",
            "dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n"]  # fmt: skip
KPI_COLLECTIONS = ["kpi_hourly", "kpi_carrier_daily", "kpi_route_monthly", "weather_impact"]
READ_MODELS = ["flights_by_hour", "kpi_daily"]
SERVING = ["flights", *KPI_COLLECTIONS, *READ_MODELS, "weather_hourly", "airlines", "airports",
           "planes"]  # fmt: skip


# ------------------------------------------------------------- the independent expectation
def expected_flights() -> pd.DataFrame:
    """What the serving model should know of each flight after the window, from raw CSVs."""
    f = pd.read_csv(sources.flights_csv(), na_values=["NA"], keep_default_na=False)
    tz = pd.read_csv(sources.airports_csv(), na_values=["NA"], keep_default_na=False)
    tz = tz.set_index("faa")["tzone"]
    day = pd.to_datetime(f[["year", "month", "day"]])
    sched = (day + pd.to_timedelta(f["hour"] * 60 + f["minute"], unit="m")).dt.tz_localize(
        "America/New_York").dt.tz_convert("UTC")  # fmt: skip
    dep = sched + pd.to_timedelta(f["dep_delay"], unit="m")
    dep_day = dep.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    arr_naive = dep_day + pd.to_timedelta((f["arr_time"] // 100) * 60 + f["arr_time"] % 100,
                                          unit="m")  # fmt: skip
    zone = f["dest"].map(tz).fillna(f["dest"].map(ZONES))
    arr = pd.Series(pd.NaT, index=f.index, dtype="datetime64[ns, UTC]")
    for z, idx in f.groupby(zone).groups.items():
        arr.loc[idx] = arr_naive.loc[idx].dt.tz_localize(
            z, ambiguous=True, nonexistent="shift_forward").dt.tz_convert("UTC")  # fmt: skip
    arr = arr.where(arr >= dep, arr + pd.Timedelta(days=1))

    def inside(ts: pd.Series) -> pd.Series:
        return (ts >= START) & (ts < END)

    seen_sched = inside(sched - LEAD)
    seen_cancel = f["dep_time"].isna() & inside(sched)
    seen_dep = f["dep_time"].notna() & inside(dep)
    seen_arr = f["arr_time"].notna() & inside(arr)
    dep_known = seen_dep | seen_arr
    out = pd.DataFrame({
        "origin": f["origin"], "dest": f["dest"], "carrier": f["carrier"],
        "date": day.dt.strftime("%Y-%m-%d"), "month": day.dt.strftime("%Y-%m"),
        "weekday": day.dt.day_of_week + 1, "local_hour": f["hour"],
        "sched_hour": sched.dt.floor("h"),
        "departed": dep_known,
        "dep_delay": f["dep_delay"].where(dep_known),
        "arr_delay": f["arr_delay"].where(seen_arr),
        "cancelled": seen_cancel,
        "seen": seen_sched | seen_cancel | seen_dep | seen_arr,
    })  # fmt: skip
    out = out[out["seen"]].copy()
    # weather at the origin for the scheduled hour, if its file landed in the window
    w = pd.read_csv(sources.weather_csv(), na_values=["NA"], keep_default_na=False)
    w["hour"] = pd.to_datetime(w["time_hour"], utc=True)
    w = w[(w["hour"] + pd.Timedelta(hours=1) > START) & (w["hour"] + pd.Timedelta(hours=1) <= END)]
    w["visib_band"] = pd.cut(w["visib"], [-1, 0.999999, 2.999999, 4.999999, 9.999999, 1e9],
                             labels=["< 1 mi", "1-3 mi", "3-5 mi", "5-10 mi", "10+ mi"]
                             ).astype("string")  # fmt: skip
    wind = w["wind_speed"].where(w["wind_speed"] <= 150)
    w["wind_band"] = pd.cut(wind, [-1, 9.999999, 19.999999, 29.999999, 1e9],
                            labels=["0-10 mph", "10-20 mph", "20-30 mph", "30+ mph"]
                            ).astype("string").fillna("unknown")  # fmt: skip
    w["precip"] = w["precip"] > 0
    out = out.merge(
        w[["origin", "hour", "visib_band", "wind_band", "precip"]],
        left_on=["origin", "sched_hour"],
        right_on=["origin", "hour"],
        how="left",
    )
    return out


def expected_measures(flights: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = (
        flights.assign(
            flights=1,
            departed=flights["departed"].astype(int),
            cancelled=flights["cancelled"].astype(int),
            on_time=(flights["departed"] & (flights["dep_delay"] <= 15)).astype(int),
            delayed_60=(flights["departed"] & (flights["dep_delay"] > 60)).astype(int),
            dep_delay_sum=flights["dep_delay"].fillna(0),
            dep_delay_n=flights["dep_delay"].notna().astype(int),
            arr_delay_sum=flights["arr_delay"].fillna(0),
            arr_delay_n=flights["arr_delay"].notna().astype(int),
        )
        .groupby(keys, dropna=False)[MEASURES]
        .sum()
    )
    return _plain_index(g.astype("int64"))


def _plain_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Same index dtypes on both sides (object for text keys), sorted."""
    flat = frame.reset_index()
    for c in flat.columns:
        if pd.api.types.is_string_dtype(flat[c]):
            flat[c] = flat[c].astype(object)
    return flat.set_index(list(frame.index.names)).sort_index()


def served(db, collection: str, keys: list[str]) -> pd.DataFrame:
    docs = list(db[collection].find({}, {"_id": 0}))
    frame = pd.DataFrame(docs)
    for k in keys:
        if pd.api.types.is_datetime64_any_dtype(frame[k]):
            frame[k] = pd.to_datetime(frame[k], utc=True)
    return _plain_index(frame.set_index(keys)[MEASURES].astype("int64"))


def snapshot(db) -> dict[str, list[dict]]:
    return {c: sorted(db[c].find({}), key=lambda d: str(d["_id"])) for c in SERVING}


# --------------------------------------------------------------------------- the fixture
@pytest.fixture(scope="module")
def loaded(stack: Settings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("processing")
    unique = uuid.uuid4().hex[:10]
    settings = isolate(stack, tmp, unique)
    settings = settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{stack.mongo.database}_proc_{unique}"})})  # fmt: skip
    result = pipeline.load_window(settings, START, END)
    print("load_window", result)
    db = mongo.database(settings)
    yield settings, db, result
    db.client.drop_database(db.name)


def test_every_kpi_document_matches_an_independent_computation(loaded) -> None:
    _, db, result = loaded
    assert result["jobs"]["flights_stream"]["rejected"] == 0
    flights = expected_flights()
    assert db.flights.count_documents({}) == len(flights)

    hourly = flights.rename(columns={"sched_hour": "hour_utc"})
    pd.testing.assert_frame_equal(
        served(db, "kpi_hourly", ["origin", "hour_utc"]),
        expected_measures(hourly, ["origin", "hour_utc"]),
        check_names=False, check_index_type=False,
    )  # fmt: skip
    for collection, keys, frame in (
        ("kpi_carrier_daily", ["carrier", "origin", "date"], flights),
        ("kpi_route_monthly", ["origin", "dest", "month"], flights),
        ("weather_impact", ["origin", "date", "visib_band", "precip", "wind_band"],
         flights[flights["visib_band"].notna()]),
    ):  # fmt: skip
        pd.testing.assert_frame_equal(
            served(db, collection, keys), expected_measures(frame, keys), check_names=False
        )


def test_serving_documents_carry_what_the_dashboard_needs(loaded) -> None:
    _, db, _ = loaded
    doc = db.flights.find_one({"status": "arrived", "weather": {"$exists": True}})
    assert doc["carrier_name"] and doc["dest_name"] and doc["dest_lat"] is not None
    assert doc["weather"]["visib_band"]
    unknown = db.flights.find_one({"dest": "SJU"})
    assert unknown["dest_known"] is False and unknown.get("dest_name") is None
    no_tail = db.flights.count_documents({"tailnum": {"$exists": False}})
    assert no_tail >= 1  # cancelled flights without a tail number are kept
    statuses = {d["status"] for d in db.flights.find({}, {"status": 1})}
    assert statuses == {"scheduled", "departed", "arrived", "cancelled"}
    hour = db.kpi_hourly.find_one({"origin": "JFK", "hour_utc": datetime(2013, 1, 2, 15)})
    assert hour["date"] == "2013-01-02" and hour["local_hour"] == 10 and hour["weekday"] == 3
    state = db.pipeline_state.find_one({"_id": "flights_stream"})
    assert START < state["newest_event_time"] < END


def test_packed_read_models_hold_the_same_documents(loaded) -> None:
    _, db, _ = loaded
    flights = {d["_id"]: d for d in db.flights.find({})}
    board = readmodels.read_board(db, [d["_id"] for d in db.flights_by_hour.find({}, {"_id": 1})])
    packed = {fid: doc for hour in board.values() for fid, doc in hour.items()}
    assert packed.keys() == flights.keys()
    for fid, doc in flights.items():
        assert packed[fid] == doc, fid
    days = readmodels.read_daily(db, sorted(d["_id"] for d in db.kpi_daily.find({}, {"_id": 1})))
    for table in ("kpi_hourly", "kpi_carrier_daily", "weather_impact"):
        stored = {d["_id"]: d for d in db[table].find({})}
        rows = [r for day in days for r in mongo.rows_of(day[table])]
        assert {r["_id"] for r in rows} == stored.keys()
        for r in rows:
            assert {m: r[m] for m in MEASURES} == {m: stored[r["_id"]][m] for m in MEASURES}


def test_running_every_job_again_changes_nothing(loaded) -> None:
    settings, db, _ = loaded
    before = snapshot(db)
    again = pipeline.run_jobs(settings)
    assert again["flights_stream"]["rows_in"] == 0
    assert again["weather_hourly"]["files"] == 0
    assert snapshot(db) == before


def test_stream_killed_mid_run_ends_in_the_same_state(loaded, tmp_path) -> None:
    settings, db, _ = loaded
    before = snapshot(db)
    # forget the stream's output and its checkpoint: it starts over from the first offset
    for c in ["flights", *KPI_COLLECTIONS, *READ_MODELS]:
        db[c].drop()
    shutil.rmtree(settings.resolve(settings.paths.checkpoints) / "flights_stream")
    db.pipeline_state.delete_one({"_id": "flights_stream"})
    params = tmp_path / "params"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params)}
    cmd = [sys.executable, "-m", "pipelines", "job", "flights_stream", "--env", settings.env,
           "--max-offsets", "1500"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )  # its Spark JVM dies with it
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill after the first committed batch
        state = db.pipeline_state.find_one({"_id": "flights_stream"})
        if state and state.get("last_batch_id", -1) >= 0:
            break
        assert proc.poll() is None, "the stream ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = db.flights.count_documents({})
    assert 0 < partial < len(before["flights"])

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot(db) == before


def test_pipeline_state_tells_the_freshness_of_each_source(loaded) -> None:
    _, db, _ = loaded
    jobs = {d["_id"] for d in db.pipeline_state.find({}, {"_id": 1})}
    assert {"flights_stream", "weather_hourly", "reference_daily"} <= jobs
    weather = db.pipeline_state.find_one({"_id": "weather_hourly"})
    assert weather["newest_event_time"] == datetime(2013, 1, 3, 23, tzinfo=UTC)
