"""The typed parameters of each job: pydantic models that refuse an unknown name or a wrong
type before anything runs (``JobSpec.validate`` in :mod:`pipelines.jobs.registry`), with a
description of every field (``--help``, the notebooks' ``parameters`` cells, ``papermill
--help-notebook``) and the checks a value needs (a stream trigger, a retention's floor, a lake
table's name)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pipelines.core.exceptions import ConfigError
from pipelines.jobs import retention


class JobParams(BaseModel):
    """Base of every job's parameters: unknown names are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    env: str


class SmokeParams(JobParams):
    messages: int = Field(default=1000, ge=0, description="messages sent to Kafka first")
    topic: str | None = Field(default=None, description="topic (None: kafka.topics.smoke)")
    collection: str = Field(default="smoke_events", description="the target collection")
    checkpoint: str | None = Field(default=None, description="checkpoint folder (None: paths)")


class DailyParams(JobParams):
    date: dt.date | None = Field(
        default=None, description="only the files of this date, YYYY-MM-DD (None: every pending)"
    )


class RebuildParams(JobParams):
    """``rebuild`` (:mod:`pipelines.jobs.rebuild`): a range of local dates of the raw log."""

    from_date: dt.date | None = Field(
        default=None, description="first local date, YYYY-MM-DD (None: the raw log's first)"
    )
    to_date: dt.date | None = Field(
        default=None, description="last local date, YYYY-MM-DD (None: the raw log's last)"
    )
    restart: bool = Field(
        default=False, description="start over instead of resuming an unfinished rebuild"
    )
    by: Literal["month", "quarter", "year"] = Field(
        default="quarter", description="what is rebuilt at once and recorded when done"
    )

    @field_validator("to_date")
    @classmethod
    def _ordered(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        first = info.data.get("from_date")
        if value is not None and first is not None and value < first:
            raise ValueError(f"to_date {value} is before from_date {first}")
        return value


_UNITS = {"ms": "milliseconds", "s": "seconds", "sec": "seconds", "seconds": "seconds",
          "m": "minutes", "min": "minutes", "minutes": "minutes"}  # fmt: skip


def trigger_options(trigger: str) -> dict[str, object]:
    """A stream trigger as ``DataStreamWriter.trigger``'s keywords: ``availableNow`` (drain,
    stop) or an interval like ``10s``, ``500ms``, ``1min``."""
    if trigger == "availableNow":
        return {"availableNow": True}
    if (m := re.fullmatch(r"(\d+)\s*([a-z]+)", trigger.strip())) and m[2] in _UNITS:
        return {"processingTime": f"{m[1]} {_UNITS[m[2]]}"}
    raise ConfigError(
        f"trigger '{trigger}' is neither 'availableNow' nor an interval like '2s' or '500ms'"
    )


class StreamParams(JobParams):
    trigger: str = Field(
        default="availableNow",
        description="lake path: availableNow (drain, stop) or an interval like 15s",
    )
    max_offsets_per_trigger: int | None = Field(
        default=200_000, ge=1, description="Kafka records per micro-batch at most"
    )
    hot: bool | None = Field(
        default=None, description="run the hot path (None: when trigger is an interval)"
    )
    board_trigger: str = Field(
        default="500ms", description="the hot path's interval for the live board"
    )
    lake: bool = Field(default=True, description="run the lake path (the source of truth)")
    lake_process: bool | None = Field(
        default=None,
        description="the lake path in a process of its own at a lower priority, so that it "
        "never holds the live board's cores (None: when both paths run long-lived)",
    )

    @field_validator("trigger", "board_trigger")
    @classmethod
    def _a_trigger(cls, value: str) -> str:
        try:
            trigger_options(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value


class AlertsParams(JobParams):
    """The ``alerts`` job; the rules' thresholds and the channels are in the parameters file
    (``alerts`` in ``parameters/<env>.yaml``), shared with the page."""

    notify: bool = Field(
        default=True, description="send the notifications (false: they wait for the next run)"
    )
    every_s: float | None = Field(
        default=None,
        gt=0,
        description="long-lived: evaluate every this many seconds until stopped (the service); "
        "None: once",
    )


# each retention's floor and why (HousekeepingParams._floor)
_FLOORS: dict[str, tuple[int, str]] = {
    "vacuum_retention_hours": (
        retention.DELTA_MIN_RETENTION_HOURS,
        "Delta's own retentionDurationCheck refuses it (7 days), a job or query still reading "
        "an older snapshot (the stream's refresh, a concurrent overwrite, time travel to a "
        "recent version) needs the files that snapshot names, and a shorter window can corrupt "
        "such a reader",
    ),
    "ledger_days": (
        retention.RUNS_PAGE_DAYS,
        "a job's health document (pipeline_health) is rebuilt from its recent runs, and "
        f"operators read the last {retention.RUNS_PAGE_DAYS} days of runs",
    ),
    "hot_days": (
        retention.HOT_MIN_DAYS,
        "the live board raises a flight's hot bucket until the flight's last event (its "
        "arrival, hours after its scheduled hour), and the page follows the hours around the "
        "replay clock from the hot buckets",
    ),
    "ledger_keep_per_job": (
        retention.RUNS_CLI_LIMIT,
        f"`tarmac runs --job <job>` shows the newest {retention.RUNS_CLI_LIMIT}",
    ),
}


class HousekeepingParams(JobParams):
    """Every retention of :mod:`pipelines.jobs.housekeeping` (docs/operations.md)."""

    vacuum_retention_hours: int = Field(
        default=retention.DELTA_MIN_RETENTION_HOURS,
        description="Delta VACUUM keeps unreferenced files this long, at least 168",
    )
    vacuum_mode: Literal["weekly", "lite", "full"] = Field(
        default="weekly",
        description="VACUUM LITE (from the log) or FULL (folders listed: also files a killed "
        "job left); weekly: FULL on Sundays (UTC), LITE the other days",
    )
    optimize_tables: str = Field(
        default="raw/flight_events,raw/rejects,raw/weather",
        description="tables OPTIMIZEd first, comma-separated, empty for none",
    )
    run_records_days: int = Field(
        default=14, ge=1, description="outputs/runs/ files kept (newest failure of a job: always)"
    )
    logs_days: int = Field(default=14, ge=1, description="rolled outputs/logs/ files kept")
    log_roll_bytes: int = Field(
        default=1024**2, ge=0, description="a log this big is rolled (0: every non-empty log)"
    )
    ledger_days: int = Field(
        default=30, description="pipeline_runs kept, at least 8 (health rebuilds)"
    )
    ledger_keep_per_job: int = Field(
        default=retention.RUNS_CLI_LIMIT, description="newest runs of each job always kept"
    )
    rejects_days: int = Field(default=30, ge=1, description="MongoDB rejects kept (lake: all)")
    hot_days: int = Field(
        default=3,
        description="hot board buckets (flights_by_hour_hot) kept, in days of the replay clock "
        "before its newest event, at least 1; older ones go once the lake's bucket knows as "
        "much",
    )
    clock_speed: float = Field(
        default=1.0,
        ge=1.0,
        le=100_000,
        description="the product's clock over the wall's (1: production): the retentions above "
        "are in the product's time and last 1/clock_speed of it on the wall; a soak replaying "
        "at 720x passes 720 so that its hour shows what a month prunes. The floors hold in the "
        "product's time; VACUUM keeps a replaced file at least 15 wall minutes",
    )

    @field_validator("vacuum_retention_hours", "ledger_days", "ledger_keep_per_job", "hot_days")
    @classmethod
    def _floor(cls, value: int, info: ValidationInfo) -> int:
        least, why = _FLOORS[info.field_name]
        if value < least:
            raise ValueError(f"{info.field_name} below {least} is refused: {why}")
        return value

    @field_validator("optimize_tables")
    @classmethod
    def _tables(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in LAKE_TABLES]
        if unknown:
            raise ValueError(f"unknown lake tables {unknown}; choose among {list(LAKE_TABLES)}")
        return ",".join(names)


# the lake's tables by name (pipelines.lake.tables.TABLES, without importing Spark here)
LAKE_TABLES = (
    "raw/flight_events", "raw/rejects", "raw/weather", "raw/airlines", "raw/airports",
    "raw/planes", "clean/weather", "clean/airlines", "clean/airports", "clean/planes",
    "clean/flights", "serving/kpi_hourly", "serving/kpi_carrier_daily",
    "serving/kpi_weather_daily", "serving/kpi_route_daily", "serving/kpi_route_monthly",
)  # fmt: skip
