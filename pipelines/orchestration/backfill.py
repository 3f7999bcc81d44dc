"""``backfill``: a dated job run once per date of a range, skipping the dates that already
succeeded (the ledger says so); and the ledger's recent runs for ``runs``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core import config
from pipelines.core.domain import RunStatus
from pipelines.core.exceptions import ConfigError, JobFailedError, JobLockedError
from pipelines.jobs import registry
from pipelines.jobs.registry import JobSpec
from pipelines.orchestration.ledger import Ledger, RunLog
from pipelines.orchestration.runner import Paths, check_notebook, outputs_dir, run, validate

SKIPPED = "skipped"  # a date whose latest run succeeded: not run again (backfill's own word)


@dataclass
class BackfillOutcome:
    date: dt.date
    # the run's RunStatus (success, failed, timeout, skipped_locked), or SKIPPED
    status: str
    run_id: str | None = None


def backfill(
    job: str | JobSpec,
    date_from: dt.date,
    date_to: dt.date,
    env: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    outputs: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_outcome: Callable[[BackfillOutcome], None] | None = None,
) -> list[BackfillOutcome]:
    """Run ``job`` for each date of ``[date_from, date_to]`` in order, skipping the dates whose
    latest ledger status is ``success``. Stops at the first failure (later dates often build on
    earlier ones); the raised error carries ``.outcomes``."""
    spec = job if isinstance(job, JobSpec) else registry.get(job)
    if not spec.date_param:
        dated = sorted(name for name, s in registry.jobs().items() if s.date_param)
        raise ConfigError(f"job {spec.name} takes no date; backfill works for {dated}")
    if date_to < date_from:
        raise ConfigError(f"--to {date_to} is before --from {date_from}")
    settings = config.load(env)
    params = dict(params or {})
    if spec.date_param in params:
        raise ConfigError(f"backfill sets '{spec.date_param}' itself; use --from/--to")
    days = [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    for day in days:  # every date's parameters are valid, or nothing runs
        validate(spec, settings.env, {**params, spec.date_param: day.isoformat()})
    check_notebook(spec)

    paths = Paths(outputs or outputs_dir())
    runlog = RunLog(paths.logs)
    ledger = Ledger(settings, paths.logs, runlog)
    outcomes: list[BackfillOutcome] = []

    def note(outcome: BackfillOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    for day in days:
        if ledger.last_status(spec.name, spec.date_param, day) == RunStatus.SUCCESS:
            runlog.event("backfill.skip", job=spec.name, env=settings.env, date=day.isoformat())
            note(BackfillOutcome(day, SKIPPED))
            continue
        try:
            result = run(
                spec,
                settings.env,
                {**params, spec.date_param: day.isoformat()},
                trigger="backfill",
                outputs=paths.root,
                sleep=sleep,
            )
        except (JobFailedError, JobLockedError) as exc:
            if isinstance(exc, JobFailedError):
                note(BackfillOutcome(day, exc.result.status, exc.result.run_id))
            else:
                note(BackfillOutcome(day, RunStatus.SKIPPED_LOCKED))
            exc.outcomes = outcomes  # type: ignore[attr-defined]
            raise
        note(BackfillOutcome(day, result.status, result.run_id))
    return outcomes


def recent_runs(env: str | None = None, job: str | None = None, limit: int = 20) -> list[dict]:
    """The latest ledger documents of ``env`` (MongoDB, plus the pending file when it lags)."""
    settings = config.load(env)
    paths = Paths(outputs_dir())
    return Ledger(settings, paths.logs, RunLog(paths.logs)).recent(job, limit)


# papermill warns about every parameter the notebook's `parameters` cell does not declare; the
# metrics path is ours, injected into every job notebook on purpose.
