"""The processing jobs through the real stack, checked against an independent computation.

A window of 2013 that crosses a month boundary and the autumn DST change (2013-11-03: a local
day of 25 hours, whose 01:00-02:00 comes twice) is replayed (Kafka events, weather files,
reference snapshots), and the three jobs run with the stream *before* the weather job, so every
weather row lands late and must reach its flights and KPIs. Every served KPI row is compared
with measures computed here with pandas straight from the raw CSVs (no pipeline code). Then: a
rerun changes nothing; a stream SIGKILLed mid-run and restarted from nothing (weather now
landed first) ends in the same state, document for document; and the same jobs run by
spark-submit on a standalone cluster of two workers give the same documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipelines.clients import mongo
from pipelines.clients.spark import build_session
from pipelines.core.config import Settings
from pipelines.core.domain import MEASURES
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.orchestration import loader
from pipelines.serving import readmodels
from pipelines.sources import nycflights13
from tests.cluster_fixture import spark_cluster  # noqa: F401
from tests.conftest import isolate, write_parameters

pytestmark = pytest.mark.integration

# 2013-10-31 14:00 .. 2013-11-04 07:00 local: a month boundary two days before the autumn DST
# change: the shortest window with both (3.75 days, 9,325 events, 85 weather files). The spring
# change (2013-03-10) is 9 days from a month's end: its window of 10.75 days made this module,
# which processes its window four times, the suite's longest (1,061 s in the suite; 332 s alone
# now). The spring change is the pure tests' (tests/unit/test_events.py, test_readmodels.py).
START = datetime(2013, 10, 31, 18, tzinfo=UTC)
END = datetime(2013, 11, 4, 12, tzinfo=UTC)
LEAD = timedelta(hours=2)
ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico",
         "SJU": "America/Puerto_Rico", "STT": "America/St_Thomas"}  # fmt: skip
MEASURES = list(MEASURES)
STREAM_OWNED = ["flights_by_hour", "kpi_hourly", "kpi_daily", "kpi_route_monthly", "kpi_profile"]
SERVING = [*STREAM_OWNED, "weather_hourly", "airlines"]
LATE_WEATHER = ["reference_daily", "flights_stream", "weather_hourly"]


# ------------------------------------------------------------- the independent expectation
def expected_flights(start: datetime = START, end: datetime = END) -> pd.DataFrame:
    """What the serving model should know of each flight after the window ``[start, end)``
    of events (and of weather files), from raw CSVs."""
    f = pd.read_csv(nycflights13.flights_csv(), na_values=["NA"], keep_default_na=False)
    tz = pd.read_csv(nycflights13.airports_csv(), na_values=["NA"], keep_default_na=False)
    tz = tz.set_index("faa")["tzone"]
    day = pd.to_datetime(f[["year", "month", "day"]])
    sched = (day + pd.to_timedelta(f["hour"] * 60 + f["minute"], unit="m")).dt.tz_localize(
        "America/New_York").dt.tz_convert("UTC")  # fmt: skip
    dep = sched + pd.to_timedelta(f["dep_delay"], unit="m")
    dep_day = dep.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    arr_naive = dep_day + pd.to_timedelta((f["arr_time"] // 100) * 60 + f["arr_time"] % 100,
                                          unit="m")  # fmt: skip
    zone = f["dest"].map(tz).fillna(f["dest"].map(ZONES))

    def localized(naive: pd.Series) -> pd.Series:
        out = pd.Series(pd.NaT, index=f.index, dtype="datetime64[ns, UTC]")
        for z, idx in f.groupby(zone).groups.items():
            out.loc[idx] = naive.loc[idx].dt.tz_localize(
                z, ambiguous=True, nonexistent="shift_forward").dt.tz_convert("UTC")  # fmt: skip
        return out

    arr = localized(arr_naive)
    # an arrival before its departure is on the next calendar day (a wall-clock day: across
    # the night of a DST change it is 23 or 25 hours later, not 24)
    arr = arr.where(arr >= dep, localized(arr_naive + pd.Timedelta(days=1)))

    def inside(ts: pd.Series) -> pd.Series:
        return (ts >= start) & (ts < end)

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
    w = pd.read_csv(nycflights13.weather_csv(), na_values=["NA"], keep_default_na=False)
    w["hour"] = pd.to_datetime(w["time_hour"], utc=True)
    w = w[(w["hour"] + pd.Timedelta(hours=1) > start) & (w["hour"] + pd.Timedelta(hours=1) <= end)]
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


def rows(db, collection: str, array: str, keys: tuple[str, ...] = ()) -> list[dict]:
    """The subdocuments of ``array`` in every document of ``collection``, with the parent's
    ``keys`` fields copied in."""
    return [{**{k: d[k] for k in keys}, **r} for d in db[collection].find({}) for r in d[array]]


def served(items: list[dict], keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(items)
    for k in keys:
        if pd.api.types.is_datetime64_any_dtype(frame[k]):
            frame[k] = pd.to_datetime(frame[k], utc=True)
    return _plain_index(frame.set_index(keys)[MEASURES].astype("int64"))


def flights_of(db) -> list[dict]:
    return rows(db, "flights_by_hour", "flights", ("origin", "date"))


def without_times(value):
    """``value`` without ``updated_at`` fields (wall-clock stamps of when it was written)."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k != "updated_at"}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def snapshot(db, times: bool = True) -> dict[str, list[dict]]:
    docs = {c: sorted(db[c].find({}), key=lambda d: str(d["_id"])) for c in SERVING}
    return docs if times else without_times(docs)


# --------------------------------------------------------------------------- the fixture
def _isolated(stack: Settings, tmp, tag: str) -> Settings:
    unique = uuid.uuid4().hex[:10]
    settings = isolate(stack, tmp, unique)
    return settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{stack.mongo.database}_{tag}_{unique}"})})  # fmt: skip


@pytest.fixture(scope="module")
def loaded(stack: Settings, tmp_path_factory):
    settings = _isolated(stack, tmp_path_factory.mktemp("processing"), "proc")
    result = loader.load_window(settings, START, END, jobs=LATE_WEATHER)
    print("load_window", result)
    db = mongo.database(settings)
    yield settings, db, result
    db.client.drop_database(db.name)


def test_every_kpi_document_matches_an_independent_computation(loaded) -> None:
    _, db, result = loaded
    assert result["jobs"]["flights_stream"]["rejected"] == 0
    flights = expected_flights()
    assert len(flights_of(db)) == len(flights)
    assert {d["_id"] for d in db.kpi_daily.find({}, {"_id": 1})} == set(flights["date"])

    hourly = flights.rename(columns={"sched_hour": "hour_utc"})
    pd.testing.assert_frame_equal(
        served(rows(db, "kpi_daily", "hours"), ["origin", "hour_utc"]),
        expected_measures(hourly, ["origin", "hour_utc"]),
        check_names=False, check_index_type=False,
    )  # fmt: skip
    for items, keys, frame in (
        (rows(db, "kpi_daily", "carriers", ("date",)), ["carrier", "origin", "date"], flights),
        (rows(db, "kpi_route_monthly", "routes", ("month",)), ["origin", "dest", "month"],
         flights),
        (rows(db, "kpi_daily", "weather", ("date",)),
         ["origin", "date", "visib_band", "precip", "wind_band"],
         flights[flights["visib_band"].notna()]),
    ):  # fmt: skip
        pd.testing.assert_frame_equal(
            served(items, keys), expected_measures(frame, keys), check_names=False
        )


def test_the_window_covers_a_dst_day_and_a_month_boundary(loaded) -> None:
    _, db, _ = loaded

    def offsets(day: str) -> set[int]:
        doc = db.kpi_daily.find_one({"_id": day})
        return {(h["hour_utc"].hour - h["local_hour"]) % 24 for h in doc["hours"]}

    # fall back at 2:00 local on 2013-11-03 (a 25-hour day): EDT before, EST after
    assert offsets("2013-11-02") == {4} and offsets("2013-11-03") == {5}
    assert len(readmodels.hours_of_date("2013-11-03")) == 25
    # VX 413 JFK -> LAX left at 22:17 on 2013-11-02 and landed at 01:14 in Los Angeles, a wall
    # clock that came twice that night: the first one (PDT), as the oracle's pandas says
    vx = next(f for f in flights_of(db) if f["flight_key"].startswith("2013-11-02|VX|413|JFK|"))
    assert vx["arr_time_utc"].replace(tzinfo=None) == datetime(2013, 11, 3, 8, 14)
    assert {d["_id"] for d in db.kpi_route_monthly.find({}, {"_id": 1})} == {"2013-10", "2013-11"}


def test_profile_is_the_sum_of_the_daily_documents(loaded) -> None:
    _, db, _ = loaded
    profile = db.kpi_profile.find_one({"_id": readmodels.PROFILE_ID})
    days = list(db.kpi_daily.find({}))
    assert [d["date"] for d in profile["days"]] == sorted(d["_id"] for d in days)
    hours = pd.DataFrame([{**h, "weekday": d["weekday"]} for d in days for h in d["hours"]])
    want = hours.groupby(["origin", "weekday", "local_hour"])[MEASURES].sum()
    got = pd.DataFrame(profile["weekday_hour"]).set_index(["origin", "weekday", "local_hour"])
    pd.testing.assert_frame_equal(got[MEASURES].sort_index(), want.sort_index(),
                                  check_dtype=False)  # fmt: skip


def test_serving_documents_carry_what_the_dashboard_needs(loaded) -> None:
    _, db, _ = loaded
    flights = flights_of(db)
    doc = next(f for f in flights if f["status"] == "arrived" and "weather" in f)
    assert doc["carrier_name"] and doc["dest_name"] and doc["dest_lat"] is not None
    assert doc["weather"]["visib_band"] and isinstance(doc["sched_dep_utc"], datetime)
    unknown = next(f for f in flights if f["dest"] == "SJU")
    assert unknown["dest_known"] is False and "dest_name" not in unknown
    assert any("tailnum" not in f for f in flights)  # cancelled flights without a tail number
    assert {f["status"] for f in flights} == {"scheduled", "departed", "arrived", "cancelled"}
    assert len({f["flight_key"] for f in flights}) == len(flights)  # every flight once
    bucket = db.flights_by_hour.find_one({"_id": "JFK|2013-11-01T14:00Z"})
    assert bucket["date"] == "2013-11-01" and bucket["n"] == len(bucket["flights"])
    keys = [(f["sched_dep_utc"], f["flight_key"]) for f in bucket["flights"]]
    assert keys == sorted(keys) and {f["local_hour"] for f in bucket["flights"]} == {10}
    state = db.pipeline_state.find_one({"_id": "flights_stream"})
    assert START < state["newest_event_time"] < END


def _values(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)
    else:
        yield value


def test_documents_are_typed_small_and_hold_no_json_text(loaded) -> None:
    _, db, _ = loaded
    for collection in db.list_collection_names():
        for doc in db[collection].find({}):
            for value in _values(doc):
                assert value is not None, collection  # unknown values are absent
                if isinstance(value, str):
                    assert len(value) <= 2000, collection
                    assert not value.startswith(("{", "[")) or collection == "rejects"


def test_running_every_job_again_changes_nothing(loaded) -> None:
    settings, db, _ = loaded
    before = snapshot(db)
    again = loader.run_jobs(settings)
    assert again["flights_stream"]["rows_in"] == 0
    assert again["weather_hourly"]["files"] == 0
    assert snapshot(db) == before


def _forget_the_stream(settings: Settings, db) -> None:
    """The stream's documents, lake tables and checkpoint gone: it starts from offset 0."""
    for c in STREAM_OWNED:
        db[c].drop()
    spark = build_session(settings, "tests")
    Lake.of(spark, settings).drop(tables.STREAM_TABLES)
    shutil.rmtree(f"{settings.checkpoint_root}/flights_stream")
    db.pipeline_state.delete_one({"_id": "flights_stream"})


def test_stream_killed_mid_run_ends_in_the_same_state(loaded, tmp_path) -> None:
    settings, db, _ = loaded
    before = snapshot(db, times=False)
    _forget_the_stream(settings, db)
    params = tmp_path / "params"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params)}
    cmd = [sys.executable, "-m", "pipelines", "job", "flights_stream", "--env", settings.env]
    proc = subprocess.Popen(
        [*cmd, "-p", "max_offsets_per_trigger=4000"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip  # its Spark JVM dies with it
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill after the first committed batch
        state = db.pipeline_state.find_one({"_id": "flights_stream"})
        served = sum(d.get("n", 0) for d in db.flights_by_hour.find({}, {"n": 1}))
        if state and state.get("last_batch_id", -1) >= 0 and served:  # a refresh written too
            break
        assert proc.poll() is None, "the stream ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = sum(d["n"] for d in db.flights_by_hour.find({}, {"n": 1}))
    assert 0 < partial < len(flights_of_snapshot(before))

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot(db, times=False) == before


def flights_of_snapshot(snap: dict[str, list[dict]]) -> list[dict]:
    return [f for bucket in snap["flights_by_hour"] for f in bucket["flights"]]


def test_pipeline_state_tells_the_freshness_of_each_source(loaded) -> None:
    _, db, _ = loaded
    jobs = {d["_id"] for d in db.pipeline_state.find({}, {"_id": 1})}
    assert {"flights_stream", "weather_hourly", "reference_daily"} <= jobs
    weather = db.pipeline_state.find_one({"_id": "weather_hourly"})
    assert weather["newest_event_time"] == END - timedelta(hours=1)


def test_a_rebuild_killed_after_a_month_resumes_and_writes_back_every_document(
    loaded, tmp_path
) -> None:
    """Derived tables and documents lost: ``python -m pipelines rebuild`` of the window (two
    months: 31 October, then November) killed once its first month is done; run again, it
    resumes with November alone, and every document the incremental path wrote is back, field for
    field (only the ``updated_at`` stamps differ)."""
    settings, db, _ = loaded
    before = snapshot(db, times=False)
    assert all(before[c] for c in SERVING), {c: len(v) for c, v in before.items()}
    for collection in SERVING:
        if collection != "airlines":  # the reference snapshot: reference_daily's, not derived
            db[collection].delete_many({})
    for table in (tables.WEATHER, tables.FLIGHTS, tables.KPI_HOURLY, tables.KPI_ROUTE_MONTHLY):
        shutil.rmtree(f"{settings.lake_root}/{table.name}")  # the derived tables gone too
    params = tmp_path / "params"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params)}
    # by month: two chunks in the window, October then November
    cmd = [sys.executable, "-m", "pipelines", "rebuild", "--env", settings.env, "--no-progress",
           "--by", "month"]  # fmt: skip
    killed = subprocess.run(cmd, env={**env, "TARMAC_FAULT": "rebuild.after_chunk"},
                            capture_output=True, text=True, timeout=900,
                            start_new_session=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert re.search(r"^rebuild 2013-10  1 dates", killed.stdout, re.M), killed.stdout
    assert "rebuild 2013-11" not in killed.stdout
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    nov = len({d["_id"] for d in before["kpi_daily"]} - {"2013-10-31"})
    summary = done.stdout.splitlines()[-1]
    print(summary)  # -s: each step's time
    line = rf"rebuild \({settings.env}\): {nov} of {nov + 1} dates in 1 month\(s\), resumed "
    assert re.match(line + r"after 1 month\(s\), [\d.]+ s ", summary), done.stdout
    assert snapshot(db, times=False) == before


def test_a_spark_cluster_writes_the_same_documents(loaded, spark_cluster, tmp_path) -> None:  # noqa: F811
    """The jobs by one spark-submit (one application running them in order) on a standalone
    master with two workers (one core each): the same counts and documents as the local run,
    hence as the independent computation."""
    local_settings, local_db, local = loaded
    settings = _isolated(local_settings, tmp_path, "cluster")
    from pipelines.sources import replay

    replay.make(settings, "all", progress=False, start=START, end=END, catch_up=True).run()
    params = tmp_path / "params"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params)}
    db = mongo.database(settings)
    try:  # the three jobs in order in one application: one driver, one set of executors
        cmd = [sys.executable, "-m", "pipelines", "submit", "--env", settings.env,
               "--master", spark_cluster, *LATE_WEATHER]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert [r["accepted"] for r in results] == [
            local["jobs"][job]["accepted"] for job in LATE_WEATHER
        ], done.stdout
        assert snapshot(db, times=False) == snapshot(local_db, times=False)
    finally:
        db.client.drop_database(db.name)
