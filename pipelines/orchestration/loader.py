"""The whole pipeline in order, for the demo, backfills and tests: replay a window of 2013 (files
and Kafka), then run the data jobs of the registry once each, as cron runs them one by one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog

from pipelines.core import logs
from pipelines.core.config import Settings
from pipelines.jobs import registry
from pipelines.jobs.registry import PIPELINE
from pipelines.sources import catch_up, replay

log = structlog.get_logger(__name__)

# events per micro-batch of the stream in a load (the stream job's own default, 200,000, is
# for a stream that keeps up). A load of the year (1,001,615 events) on 2 quiet cores, local
# driver of 2 GiB (bench/backfill.py --max-offsets): 200,000 = 6 batches, 200.8 s; 500,000 =
# 3 batches, 178.3 s; this = 1 batch, 154.7 s. Each batch refreshes every date it touched
# (five lake tables and their documents), so fewer batches rewrite each date fewer times.
CATCH_UP_BATCH = 1_200_000


def run_jobs(
    settings: Settings,
    max_offsets_per_trigger: int | None = CATCH_UP_BATCH,
    jobs: Sequence[str] = PIPELINE,
    echo: bool = False,
) -> dict[str, Any]:
    """Each job of ``jobs`` once, in that order (default: reference_daily, weather_hourly,
    then flights_stream with availableNow), with timings. Any order gives the same state."""
    out: dict[str, Any] = {}
    for name in jobs:
        t0 = time.monotonic()
        spec = registry.get(name)
        params = {}
        if "max_offsets_per_trigger" in spec.params.model_fields:
            params["max_offsets_per_trigger"] = max_offsets_per_trigger
        out[name] = spec.run(settings, params)
        out[name]["wall_seconds"] = round(time.monotonic() - t0, 2)
        if echo:
            r = out[name]
            counts = {"rows_in": r.get("rows_in"), "rows_out": r.get("accepted"),
                      "rows_rejected": r.get("rejected")}  # fmt: skip
            logs.step(name.ljust(24), "success  ", logs.counts(counts),
                      f"{r['wall_seconds']:.1f} s")  # fmt: skip
    return out


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def sent_line(stats: replay.ReplayStats) -> str:
    """What a replay sent, per source: ``sent 1,234 flight events, 4 weather files,
    1 reference snapshot`` (and the events dead-lettered, when there are any)."""
    sent = stats.sent
    parts = [_count(sent["flights"], "flight event"), _count(sent["weather"], "weather file"),
             _count(sent["reference"], "reference snapshot")]  # fmt: skip
    if stats.dead_lettered:
        parts.append(f"{stats.dead_lettered:,} dead-lettered")
    return "sent " + ", ".join(parts)


def load_window(
    settings: Settings,
    start: datetime,
    end: datetime,
    progress: bool = False,
    jobs: Sequence[str] = PIPELINE,
    echo: bool = False,
    max_offsets_per_trigger: int | None = CATCH_UP_BATCH,
) -> dict[str, Any]:
    """Replay [start, end) of every source in catch-up mode (the files and the flights side by
    side: :func:`catch_up.run_window`), then run every job once (the stream's micro-batches of
    at most ``max_offsets_per_trigger`` events)."""
    t0 = time.monotonic()
    stats = catch_up.run_window(settings, progress=progress, start=start, end=end)
    t_replay = time.monotonic() - t0
    if echo:
        logs.step("replay".ljust(24), sent_line(stats), f"{t_replay:.1f} s")
    done = run_jobs(settings, max_offsets_per_trigger, jobs=jobs, echo=echo)
    result = {"replay": {"sent": stats.sent, "seconds": round(t_replay, 2)}, "jobs": done}
    log.info("pipeline.window_loaded", start=str(start), end=str(end), **result["replay"])
    return result
