"""The stream's publisher thread (``jobs/flights_lake.Publisher``) when another job keeps
committing the dates it refreshes: the dates wait for the next round instead of ending the
stream, up to ``CONFLICT_ROUNDS`` rounds in a row. The refresh itself is replaced here (it
needs Spark and the lake: ``tests/e2e/test_faults.py`` runs the real one); what is tested is
the thread's bookkeeping of dates, rounds and failures."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.jobs import flights_lake

CONFLICT = RuntimeError(
    "An error occurred while calling o44112.save.: io.delta.exceptions."
    "ConcurrentAppendException: [DELTA_CONCURRENT_APPEND.WITH_PARTITION_HINT] Transaction "
    "conflict detected."
)


def _lake() -> Any:  # what use_pool touches of the lake's session
    spark = SimpleNamespace(sparkContext=SimpleNamespace(setLocalProperty=lambda k, v: None))
    return SimpleNamespace(spark=spark)


def _refresh(outcomes: list[BaseException | None], calls: list[list[str]]):
    def refresh(lake: Any, store: Any, dates: list[str], **options: Any) -> dict:
        calls.append(list(dates))
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return {"clean": 0.1}

    return refresh


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flights_lake.time, "sleep", lambda s: None)


def test_dates_lost_to_a_conflict_are_refreshed_in_a_later_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(flights_lake.publish, "refresh", _refresh([CONFLICT, CONFLICT], calls))
    publisher = flights_lake.Publisher(_lake(), SimpleNamespace(), ["2013-01-06"])
    publisher.close()  # refreshes what is pending, raises its failure if any
    assert calls == [["2013-01-06"]] * 3
    assert (publisher.refreshes, publisher.deferred, publisher.error) == (1, 2, None)


def test_a_refresh_that_keeps_losing_ends_the_stream_with_the_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(flights_lake, "CONFLICT_ROUNDS", 3)
    monkeypatch.setattr(flights_lake.publish, "refresh", _refresh([CONFLICT] * 5, calls))
    publisher = flights_lake.Publisher(_lake(), SimpleNamespace(), ["2013-01-06"])
    with pytest.raises(RuntimeError, match="ConcurrentAppendException"):
        publisher.close()
    assert len(calls) == 3 and publisher.deferred == 2 and publisher.refreshes == 0


def test_any_other_failure_ends_the_stream_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(flights_lake.publish, "refresh",
                        _refresh([ValueError("bad partition")], calls))  # fmt: skip
    publisher = flights_lake.Publisher(_lake(), SimpleNamespace(), ["2013-01-06"])
    with pytest.raises(ValueError, match="bad partition"):
        publisher.close()
    assert len(calls) == 1 and publisher.deferred == 0
