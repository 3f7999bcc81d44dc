"""Each job's ``pipeline_health`` document, folded from the ledger's writes, gives the page the
job health it computed from the ledger itself (the oracle below is the page's former
computation over ``pipeline_runs``), whatever the order of the writes, their repeats and the
stale versions a replayed pending file brings (pure: no MongoDB)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from pipelines.core.domain import RunStatus
from pipelines.dashboard.health import JOBS, pipeline_health
from pipelines.orchestration import jobhealth

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STATUSES = tuple(RunStatus)  # every status the ledger holds


def oracle(runs: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """What the page showed from ``pipeline_runs`` (its code before the health documents):
    the last run by ``start`` and the failures started in the 24 h before ``now``."""
    frame = pd.DataFrame(runs)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    since = pd.Timestamp(now - timedelta(hours=24))
    rows = []
    for job in JOBS:
        mine = frame[frame["job"] == job].sort_values("start", kind="stable")
        last = mine.iloc[-1] if len(mine) else None
        recent = mine[mine["start"] >= since]
        failures = int(sum(jobhealth.failed(s) for s in recent["status"]))
        status = None if last is None else last["status"]
        error = None if last is None else last["error"]
        rows.append({
            "job": job, "status": status,
            "start": None if last is None else last["start"].to_pydatetime(),
            "end": None if last is None or pd.isna(last["end"]) else last["end"].to_pydatetime(),
            "failures_24h": failures,
            "error": error.get("message") if isinstance(error, dict) else None,
            "level": "missing" if last is None else "red" if jobhealth.failed(status)
            else "amber" if failures else "ok",
        })  # fmt: skip
    return rows


def ledger(rng: random.Random, n: int) -> list[list[dict[str, Any]]]:
    """``n`` runs over 3 days before NOW, each as the versions the runner writes (``running``
    at the start, its outcome at the end), ``updated_at`` growing."""
    runs = []
    for i in range(n):
        job = rng.choice(JOBS)
        start = NOW - timedelta(minutes=rng.randrange(0, 3 * 24 * 60), seconds=rng.random())
        status = rng.choice(STATUSES)
        end = start + timedelta(seconds=rng.randrange(1, 90))
        error = {"type": "X", "message": f"boom {i}"} if jobhealth.failed(status) else None
        base = {"_id": f"r{i}", "run_id": f"r{i}", "job": job, "env": "ci", "start": start}
        first = {**base, "status": "running", "end": None, "error": None, "updated_at": start}
        final = {**base, "status": status, "end": end, "error": error, "updated_at": end}
        runs.append([first] if status == "running" else [first, final])
    return runs


def folded(writes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for doc in writes:
        docs[doc["job"]] = jobhealth.fold(docs.get(doc["job"]), doc)
    return docs


def test_the_health_documents_show_what_the_ledger_showed() -> None:
    rng = random.Random(18)
    for _ in range(20):
        runs = ledger(rng, rng.randrange(1, 120))
        final = [versions[-1] for versions in runs]
        in_order = sorted((v for vs in runs for v in vs), key=lambda d: d["updated_at"])
        shuffled = [v for vs in runs for v in vs]
        rng.shuffle(shuffled)  # a replayed pending file: any order, stale versions included
        replayed = in_order + rng.sample(shuffled, len(shuffled) // 2)
        for writes in (in_order, shuffled, replayed):
            for now in (NOW, NOW + timedelta(hours=5), NOW + timedelta(days=2)):
                assert pipeline_health(folded(writes), now) == oracle(final, now)


def test_fold_is_idempotent_and_keeps_the_latest_failure_and_success() -> None:
    start = NOW - timedelta(hours=2)
    end = start + timedelta(seconds=30)
    ok = {"_id": "a", "job": "weather_hourly", "status": "success", "start": start,
          "end": end, "updated_at": end}  # fmt: skip
    bad = {"_id": "b", "job": "weather_hourly", "status": "failed", "start": NOW,
           "end": NOW, "error": {"type": "X", "message": "no file"}, "updated_at": NOW}  # fmt: skip
    once = folded([ok, bad])
    assert folded([ok, bad, bad, ok]) == once
    doc = once["weather_hourly"]
    assert doc["last"]["run_id"] == "b" and doc["last"]["error"] == "no file"
    assert doc["last_success"]["run_id"] == "a" and doc["last_failure"]["run_id"] == "b"
    assert [f["run_id"] for f in doc["failures"]] == ["b"]
    assert jobhealth.failures_since(doc, NOW - timedelta(hours=24)) == 1
    assert jobhealth.failures_since(doc, NOW + timedelta(seconds=1)) == 0


def test_failures_older_than_a_day_before_the_last_run_are_dropped() -> None:
    writes = [
        {"_id": f"f{i}", "job": "flights_stream", "status": "failed",
         "start": NOW - timedelta(hours=h), "end": NOW - timedelta(hours=h),
         "updated_at": NOW - timedelta(hours=h)}
        for i, h in enumerate((30, 26, 23, 1))
    ]  # fmt: skip
    doc = folded(writes)["flights_stream"]
    assert [f["run_id"] for f in doc["failures"]] == ["f3", "f2"]  # 26 h and 30 h before NOW: gone
