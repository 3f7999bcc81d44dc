"""The one job registry: every job a person, cron, the runner, the demo, spark-submit, the
dashboard's freshness panel and the tests may run, with its notebook, its code and its parameters.

A job is a module of :mod:`pipelines.jobs` with a ``main(settings, params) -> dict`` function, a
parameterized notebook that calls it (the door papermill and cron use), and a :class:`JobSpec`:
a pydantic model of its parameters (:mod:`pipelines.jobs.params`: unknown names and wrong types
are refused before anything runs), a timeout, how often a transient failure is retried and with
which backoff, which parameter carries the logical date for ``backfill``, and how stale its
data may get before the dashboard turns amber or red, and, for a job that runs long-lived, its
:class:`ServiceSpec` (``tarmac service start|stop|status|run|ensure <job>``,
:mod:`pipelines.orchestration.service`). :data:`PIPELINE` is the order the demo, backfills and
tests run the data jobs in (any order gives the same state).

- ``tarmac run <job> -p k=v``: through papermill
  (:mod:`pipelines.orchestration.runner`);
- ``tarmac job <job> -p k=v``: in this process (:func:`run_job`);
- ``spark-submit pipelines/jobs/submit.py <job> --env E -p k=v``: on any master.

Tests and plugins add jobs without touching this file: ``TARMAC_JOBS_MODULE=pkg.mod[,other]``
names modules whose ``JOBS`` dict is merged into the registry (also in subprocesses).

**Notebook-native jobs** need no module and no entry here: a notebook whose metadata holds
``tarmac.job`` (name, schedule, timeout, retries, what it writes) *is* a job, its parameters read
from its ``parameters`` cell (:mod:`pipelines.jobs.notebook_jobs`). :func:`jobs` returns them
with the module jobs: every ``notebooks/*.ipynb`` that declares one, and those of the folders of
``$TARMAC_JOBS_NOTEBOOKS=dir[:dir]``. A name declared twice is a :class:`ConfigError`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from pipelines.core.config import REPO_ROOT
from pipelines.core.exceptions import ConfigError
from pipelines.jobs.params import (
    AlertsParams,
    DailyParams,
    HousekeepingParams,
    JobParams,
    RebuildParams,
    SmokeParams,
    StreamParams,
)
from pipelines.serving.alerts.levels import Staleness

BATCH_NICE = 10  # the batch jobs' niceness: a weather run beside the stream slowed its hot
# micro-batches from 2.8 s to 4 to 8.7 s (bench/latency.py, 2 cores, measured)


@dataclass(frozen=True)
class ServiceSpec:
    """How a job runs long-lived, as a supervised service (:mod:`pipelines.orchestration.service`):
    a supervisor process runs ``python -m pipelines job <name> -p k=v ...`` with :attr:`params`
    as its worker, restarts it when it ends (backoff ``backoff_s[0]`` doubling to
    ``backoff_s[1]``, back to the start once a worker has run ``stable_s``), and on stop sends
    it SIGTERM (the job's Ctrl-C path), then SIGKILLs what is left after ``stop_grace_s``."""

    params: Mapping[str, str]  # the job parameters of the long-lived mode
    backoff_s: tuple[float, float] = (1.0, 60.0)  # first and longest wait before a restart
    stable_s: float = 120.0  # a worker up this long resets the backoff
    stop_grace_s: float = 60.0  # SIGTERM -> SIGKILL of everything the worker started
    state_id: str | None = None  # its ``pipeline_state`` document (None: the job's name)

    def describe(self) -> str:
        """``trigger=1s``: for ``tarmac jobs``."""
        return " ".join(f"{k}={v}" for k, v in self.params.items()) or "(defaults)"


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
    module: str | None = None  # the code: a module with main(settings, params) -> dict
    in_pipeline: bool = False  # one of the data jobs of PIPELINE (in JOBS order)
    stale_wall: Staleness | None = None  # state's updated_at vs now
    stale_replay: Staleness | None = None  # newest data time vs the replay clock
    service: ServiceSpec | None = None  # how it runs long-lived (None: not a service)
    # added to the niceness of the `run` / `job` command that runs it (its notebook's kernel,
    # Spark's JVM and Python workers inherit it): the batch jobs yield the cores to the
    # stream's hot path, which must put an event on the board within seconds (BATCH_NICE)
    nice: int = 0
    # a notebook-native job (declared by its notebook's metadata, pipelines.jobs.notebook_jobs):
    # no module; its cron schedule (5 fields, None: not scheduled) and what it writes
    native: bool = False
    schedule: str | None = None
    writes: tuple[str, ...] = ()

    def run(self, settings: Any, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run the job in this process with ``params`` (validated; ``env`` from ``settings``):
        a module job's ``main``; a notebook-native job's notebook as a script (its code cells,
        parameters injected as papermill does, no kernel), returning what it reported."""
        if self.module is None and not self.native:
            raise ConfigError(f"job {self.name} has no module to run in-process; use `run`")
        typed = self.validate({"env": settings.env, **(params or {})})
        if self.native:
            from pipelines.jobs import notebook_jobs

            return notebook_jobs.run_in_process(self, typed)
        return importlib.import_module(str(self.module)).main(settings, typed)

    @property
    def code(self) -> str:
        """Where the job's code is, for ``jobs``: its module, or ``notebook`` (native)."""
        return self.module or ("notebook" if self.native else "-")

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
            module="pipelines.jobs.smoke",
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
            module="pipelines.jobs.reference_daily",
            in_pipeline=True,
            stale_wall=Staleness(timedelta(hours=26), timedelta(hours=50)),
            stale_replay=Staleness(timedelta(hours=26), timedelta(hours=50)),
            nice=BATCH_NICE,
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
            module="pipelines.jobs.weather_hourly",
            in_pipeline=True,
            stale_wall=Staleness(timedelta(minutes=90), timedelta(hours=3)),
            # a file lands once an hour with the hour before it: when it lands, the newest
            # hour served is already 2 h behind the clock, so amber = one file an hour late
            stale_replay=Staleness(timedelta(hours=3), timedelta(hours=6)),
            nice=BATCH_NICE,
        ),
        JobSpec(
            # Long-lived: a supervised service (cron's watchdog line starts it when it is not
            # running). `run` is one availableNow pass (tests, backfills); no retries of its own.
            "flights_stream",
            Path("notebooks/30_flights_stream.ipynb"),
            StreamParams,
            timeout_s=600,
            retries=0,
            description="flight events from Kafka: a long-lived service, or one availableNow pass",
            module="pipelines.jobs.flights_stream",
            in_pipeline=True,
            stale_wall=Staleness(timedelta(minutes=5), timedelta(minutes=15)),
            # the lake path every 10 s (the day documents within ~30 s), the live board every
            # 500 ms
            service=ServiceSpec({"trigger": "10s", "board_trigger": "500ms"}),
        ),
        JobSpec(
            # a long-lived service (cron keeps only its watchdog): the rules of "Needs
            # attention" every 5 s, kept in MongoDB `alerts`, each opening and closing sent to
            # the webhook and by mail; `run alerts` evaluates once
            "alerts",
            Path("notebooks/40_alerts.ipynb"),
            AlertsParams,
            timeout_s=120,
            retries=0,  # the next round is the retry
            description="alert rules: open / update / close alerts, webhook and mail",
            module="pipelines.jobs.alerts",
            service=ServiceSpec({"every_s": "5"}),
        ),
        JobSpec(
            # by hand (tarmac rebuild): the clean and serving tables and their
            # documents recomputed from the raw lake, a month at a time, resumable
            "rebuild",
            Path("notebooks/60_rebuild.ipynb"),
            RebuildParams,
            timeout_s=3600,
            retries=1,  # a rerun resumes from the first month not done
            retry_backoff_s=60,
            description="clean + serving tables and documents recomputed from the raw lake",
            module="pipelines.jobs.rebuild",
            nice=BATCH_NICE,
        ),
        JobSpec(
            # daily in the crontab: VACUUM, OPTIMIZE, old run records, logs, ledger, rejects
            "housekeeping",
            Path("notebooks/95_housekeeping.ipynb"),
            HousekeepingParams,
            timeout_s=3600,
            retries=1,
            retry_backoff_s=300,
            description="retention: Delta VACUUM/OPTIMIZE, run records, logs, ledger, rejects",
            module="pipelines.jobs.housekeeping",
            nice=BATCH_NICE,
        ),
    ]
}


def renice(spec: JobSpec) -> None:
    """Lower this process's priority by ``spec.nice`` (what the ``run`` and ``job`` commands
    do before they start the job; the processes it starts inherit it)."""
    if spec.nice:
        os.nice(spec.nice)


METRICS_PARAM = "tarmac_metrics_path"  # injected by the runner into every job notebook
_JSON_TYPES = {str: "str", int: "int", float: "float", bool: "bool", dt.date: "str"}


def _notebook_type(annotation: Any) -> str:
    """The type a papermill parameter has in the notebook (JSON values: a date is a string)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and len(args) < len(get_args(annotation)):  # X | None
        return f"Optional[{_notebook_type(args[0])}]"
    if get_origin(annotation) is Literal:
        return "str"
    return _JSON_TYPES.get(annotation, "str")


def _parameter_line(name: str, kind: str, value: Any, help_: str) -> str:
    """``name: kind = value  # help``; an optional one as ``name = value  # type: kind help``
    (papermill reads neither ``X | None`` nor a name Python would have to import)."""
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    if kind.startswith("Optional["):
        return f"{name} = {shown}  # type: {kind} {help_}".rstrip()
    return f"{name}: {kind} = {shown}  # {help_}".rstrip()


def parameters_cell(spec: JobSpec) -> str:
    """The ``parameters`` cell of ``spec``'s notebook, from its model: typed lines papermill reads
    (``papermill --help-notebook`` lists each with its type and help), ``env`` first, then
    every field, then the runner's metrics path. The notebooks hold exactly this text (tested)."""
    lines = []
    for name, field in spec.params.model_fields.items():
        default = "local" if name == "env" else field.default
        default = default.isoformat() if isinstance(default, dt.date) else default
        help_ = "parameters/<env>.yaml to use" if name == "env" else field.description or ""
        lines.append(_parameter_line(name, _notebook_type(field.annotation), default, help_))
    lines.append(_parameter_line(METRICS_PARAM, "Optional[str]", None, "set by the runner"))
    return "\n".join(lines)


PIPELINE: tuple[str, ...] = tuple(name for name, spec in JOBS.items() if spec.in_pipeline)


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
    """Every job of the registry: :data:`JOBS`, the jobs of ``$TARMAC_JOBS_MODULE``, and the
    notebook-native jobs of ``notebooks/`` and ``$TARMAC_JOBS_NOTEBOOKS`` (a name already taken
    is refused)."""
    from pipelines.jobs import notebook_jobs  # it builds JobSpecs: imported once this one is

    known = {**JOBS, **_extra_jobs()}
    for name, spec in notebook_jobs.discover().items():
        if name in known:
            other = known[name].module or known[name].notebook
            raise ConfigError(
                f"job '{name}' is declared twice: by notebook {spec.notebook} (its metadata "
                f"tarmac.job.name) and by {other}; rename the notebook's job"
            )
        known[name] = spec
    return known


def get(name: str) -> JobSpec:
    known = jobs()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(
            f"no job '{name}' in the registry; choose one of {sorted(known)}"
        ) from None


def get_service(name: str) -> JobSpec:
    """The job ``name``, which must have a :class:`ServiceSpec`."""
    spec = get(name)
    if spec.service is None:
        services = sorted(n for n, s in jobs().items() if s.service is not None)
        raise ConfigError(f"job '{name}' does not run as a service; services: {services}")
    return spec


def parse_assignments(pairs: list[str] | None) -> dict[str, str]:
    """``["messages=10", "date=2013-01-02"]`` -> dict; values stay strings until validated."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"parameter {pair!r} must be written name=value")
        if name in out:
            raise ConfigError(f"parameter '{name}' is given twice")
        out[name] = value
    return out


def run_job(name: str, settings: Any, **params: Any) -> dict[str, Any]:
    """Run job ``name`` in this process (no notebook); return its result."""
    return get(name).run(settings, params)
