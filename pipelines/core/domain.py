"""The domain's constants, in one home: airports, time zone, event types and flight statuses,
run statuses (:class:`RunStatus`), the additive measures and the weather bands. Plain Python
(no Spark, no pymongo), so every stage (sources, transforms, jobs, orchestration, dashboard)
imports them without pulling in an engine."""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

ORIGINS = ("EWR", "JFK", "LGA")
LOCAL_TZ = "America/New_York"
NEW_YORK = ZoneInfo(LOCAL_TZ)

EVENT_TYPES = ("scheduled", "departed", "arrived", "cancelled")
STATUS_RANK = {"scheduled": 1, "departed": 2, "arrived": 3, "cancelled": 4}
STATUS_NAME = {rank: name for name, rank in STATUS_RANK.items()}


class RunStatus(StrEnum):
    """A run's status in the ledger (``pipeline_runs.status``, folded into
    ``pipeline_health``): every value the runner, a notebook's execution and a service's
    supervisor write, and all the page, the alert rules, ``backfill`` and housekeeping read.

    A :class:`~enum.StrEnum`: a member *is* its string (``RunStatus.FAILED == "failed"``, same
    hash), so a status read back from MongoDB or JSON compares equal to its member, and the
    documents hold the plain value."""

    RUNNING = "running"  # written when an attempt (or a service's worker) starts
    SUCCESS = "success"
    # the notebook raised, its kernel died, Ctrl-C, a service's worker died, or the run was
    # abandoned (its process killed holding the lock: ``Ledger.mark_abandoned``)
    FAILED = "failed"
    TIMEOUT = "timeout"  # past the job's timeout: interrupted, then killed if it hung
    SKIPPED_LOCKED = "skipped_locked"  # another run held the job's lock: this one did nothing
    STOPPED = "stopped"  # a service's worker stopped on request (no alarm)


# the statuses that count as a failure (the page's job pills, the alerts, housekeeping's keeps)
RUN_FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT})


def run_failed(status: object) -> bool:
    """``status`` (a member or the string read back) counts as a failure (``pipeline_runs``,
    ``pipeline_health``)."""
    return isinstance(status, str) and status in RUN_FAILED


SCHEMA_VERSION = 1

# the additive measures of every KPI row (docs/data-model.md): ratios are computed when read
MEASURES = (
    "flights", "departed", "cancelled", "on_time", "delayed_60",
    "dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n",
)  # fmt: skip

VISIB_BANDS = ("< 1 mi", "1-3 mi", "3-5 mi", "5-10 mi", "10+ mi")
WIND_BANDS = ("0-10 mph", "10-20 mph", "20-30 mph", "30+ mph")
WEATHER_FIELDS = ("temp_c", "visib_km", "wind_speed_kmh", "precip_mm", "visib_band",
                  "wind_band", "precip")  # fmt: skip  # what a flight carries of its weather

# ``ORIGIN|YYYY-MM-DDTHH:MMZ``: the hour key, in Python (strftime) and in Spark (date_format)
# ISO-8601 UTC times of the events and files (``2013-01-01T05:15:00Z``)
ISO_UTC_PY = "%Y-%m-%dT%H:%M:%SZ"
ISO_UTC_SPARK = "yyyy-MM-dd'T'HH:mm:ssX"

HOUR_KEY_PY = "%Y-%m-%dT%H:%MZ"
HOUR_KEY_SPARK = "yyyy-MM-dd'T'HH:mm'Z'"


def days_of_month(month: str) -> list[str]:
    """Every ``YYYY-MM-DD`` of ``month`` (``YYYY-MM``)."""
    first = date.fromisoformat(month + "-01")
    nxt = (first + timedelta(days=32)).replace(day=1)
    return [(first + timedelta(days=i)).isoformat() for i in range((nxt - first).days)]
