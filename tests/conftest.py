"""Shared fixtures. Integration tests run against the real embedded stack of env ``ci``
(Kafka on 19092, FerretDB on 27018), started once per session and stopped afterwards if
this session started it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipelines import config, logs
from pipelines.config import Settings

TEST_ENV = os.environ.get("TARMAC_TEST_ENV", "ci")


def pytest_configure(config: pytest.Config) -> None:
    logs.configure("WARNING")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load(TEST_ENV)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The real local stack, up for the whole session; what we started is stopped at the end."""
    from pipelines import stack as stack_mod
    from pipelines.services import services

    before = {svc.name: svc.pid() for svc in services(settings)}
    stack_mod.up(settings)
    yield settings
    for svc in services(settings):
        if svc.embedded and before.get(svc.name) is None:
            svc.stop()


@pytest.fixture(scope="session")
def spark(settings: Settings):
    """One local SparkSession for the whole test session (no service needed)."""
    from pipelines.spark import build_session

    session = build_session(settings, "tests")
    yield session
    session.stop()


@pytest.fixture
def db(stack: Settings):
    from pipelines import mongo

    return mongo.database(stack)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic / collection names of one test."""
    return uuid.uuid4().hex[:10]


def isolate(settings: Settings, tmp_path, unique: str) -> Settings:
    """A copy of ``settings`` with its own topics, data and checkpoint folders."""
    return settings.isolated(unique, tmp_path)


def write_parameters(settings: Settings, folder) -> None:
    """Write ``settings`` as ``<folder>/<env>.yaml`` (for subprocesses: TARMAC_PARAMETERS_DIR)."""
    settings.write(folder)


@pytest.fixture
def iso(stack: Settings, tmp_path, unique) -> Settings:
    """The running stack's settings, isolated for one test (own topics and folders)."""
    return isolate(stack, tmp_path, unique)


def publish_read_models(db) -> None:
    """Build the dashboard's read models (``kpi_daily``, ``flights_by_hour``) from the KPI and
    flight documents a test wrote directly, the way the jobs publish them. A route-month
    document becomes the route-day partial of the first day of its month."""
    from pipelines import readmodels

    tables = {
        "kpi_hourly": list(db.kpi_hourly.find({})),
        "kpi_carrier_daily": list(db.kpi_carrier_daily.find({})),
        "weather_impact": list(db.weather_impact.find({})),
        "routes": [{**d, "date": f"{d['month']}-01"} for d in db.kpi_route_monthly.find({})],
    }
    names = {t: sorted({k for r in rows for k in r}) for t, rows in tables.items()}
    dates = sorted({r["date"] for rows in tables.values() for r in rows})
    db.kpi_daily.drop()
    if dates:
        db.kpi_daily.insert_many(readmodels.daily_docs(dates, tables, names))
    board: dict[str, dict[str, dict]] = {}
    for f in db.flights.find({}):
        hour = f["sched_dep_utc"].replace(minute=0, second=0, microsecond=0)
        board.setdefault(readmodels.hour_key(f["origin"], hour), {})[f["_id"]] = {
            "sched_hour_utc": hour,
            "date": f.get("date"),
            **f,
        }
    db.flights_by_hour.drop()
    if board:
        db.flights_by_hour.insert_many(readmodels.board_docs(board))
