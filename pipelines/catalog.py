"""The job catalog: every job cron (or a person) may run, with its notebook and its parameters.

A job is a parameterized notebook plus a :class:`JobSpec`: a pydantic model of its parameters
(unknown names and wrong types are refused before anything runs), a timeout, how often a
transient failure is retried and with which backoff, and which parameter carries the logical
date for ``backfill``. ``python -m pipelines run <job>`` executes it (see :mod:`pipelines.runner`).

Tests and plugins add jobs without touching this file: ``TARMAC_JOBS_MODULE=pkg.mod[,other]``
names modules whose ``JOBS`` dict is merged into the catalog (also in subprocesses).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import REPO_ROOT
from .exceptions import ConfigError


class JobParams(BaseModel):
    """Base of every job's parameters: unknown names are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    env: str


class SmokeParams(JobParams):
    messages: int = Field(default=1000, ge=0, description="messages sent to Kafka first")


class DailyParams(JobParams):
    date: dt.date | None = Field(default=None, description="logical date (default: today)")


class StreamParams(JobParams):
    trigger: str = Field(default="availableNow", description="Structured Streaming trigger")


@dataclass(frozen=True)
class JobSpec:
    name: str
    notebook: Path  # relative to the repository root
    params: type[JobParams]
    timeout_s: float = 900.0  # per attempt; the whole notebook and each of its cells
    retries: int = 0  # extra attempts after a TRANSIENT failure (Kafka/Mongo unreachable)
    retry_backoff_s: float = 30.0  # wait before retry k: retry_backoff_s * 2**(k-1)
    date_param: str | None = None  # parameter that backfill sets to each date
    description: str = ""

    @property
    def notebook_path(self) -> Path:
        return self.notebook if self.notebook.is_absolute() else REPO_ROOT / self.notebook

    def describe_params(self) -> str:
        """``env (str, required), messages (int, default 1000)``: for error messages and help."""
        parts = []
        for name, field in self.params.model_fields.items():
            kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
            kind = kind.replace("datetime.", "").replace("NoneType", "None")
            default = "required" if field.is_required() else f"default {field.default!r}"
            parts.append(f"{name} ({kind}, {default})")
        return ", ".join(parts)

    def validate(self, raw: Mapping[str, Any]) -> JobParams:
        """Typed parameters from ``raw`` (strings from the command line are converted)."""
        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(parameters)"
                if err["type"] == "extra_forbidden":
                    problems.append(f"unknown parameter '{where}'")
                elif err["type"] == "missing":
                    problems.append(f"missing parameter '{where}'")
                else:
                    problems.append(f"parameter '{where}': {err['msg']} (got {err['input']!r})")
            raise ConfigError(
                f"job {self.name}: {'; '.join(problems)}. "
                f"Allowed parameters: {self.describe_params()}"
            ) from None


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in [
        JobSpec(
            "smoke",
            Path("notebooks/05_smoke.ipynb"),
            SmokeParams,
            timeout_s=600,
            retries=2,
            retry_backoff_s=30,
            description="N messages Kafka -> Spark (availableNow) -> MongoDB upserts",
        ),
        JobSpec(
            "reference_daily",
            Path("notebooks/10_reference_daily.ipynb"),
            DailyParams,
            timeout_s=1800,
            retries=2,
            retry_backoff_s=60,
            date_param="date",
            description="airlines / airports / planes snapshots of one day",
        ),
        JobSpec(
            "weather_hourly",
            Path("notebooks/20_weather_hourly.ipynb"),
            DailyParams,
            timeout_s=900,
            retries=2,
            retry_backoff_s=30,
            date_param="date",
            description="hourly weather files of the landing zone",
        ),
        JobSpec(
            # Runs every minute: a run still going makes the next minute skip (job lock), and
            # the next minute is the retry, hence no retries of its own.
            "flights_stream",
            Path("notebooks/30_flights_stream.ipynb"),
            StreamParams,
            timeout_s=600,
            retries=0,
            description="flight events from Kafka, one availableNow pass",
        ),
    ]
}


def _extra_jobs() -> dict[str, JobSpec]:
    extra: dict[str, JobSpec] = {}
    for module in filter(None, os.environ.get("TARMAC_JOBS_MODULE", "").split(",")):
        try:
            extra.update(importlib.import_module(module.strip()).JOBS)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"TARMAC_JOBS_MODULE names {module!r}, which has no JOBS dict: {exc}"
            ) from exc
    return extra


def jobs() -> dict[str, JobSpec]:
    """The catalog: :data:`JOBS` plus the jobs of ``$TARMAC_JOBS_MODULE``."""
    return {**JOBS, **_extra_jobs()}


def get(name: str) -> JobSpec:
    catalog = jobs()
    try:
        return catalog[name]
    except KeyError:
        raise ConfigError(
            f"no job '{name}' in the catalog; choose one of {sorted(catalog)}"
        ) from None
