"""The commands of ``tarmac`` that run the jobs of the registry and read their
ledger: ``job``, ``jobs``, ``pipeline``, ``submit``, ``run``, ``backfill``, ``rebuild``, ``runs``
(the others, over the stack, the servers and the services, are in :mod:`.commands`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

from pipelines.core import config, logs
from pipelines.core.domain import RunStatus

from .commands import _print_table

log = structlog.get_logger(__name__)


def cmd_job(args: argparse.Namespace) -> int:
    from pipelines.jobs import registry

    settings = config.load(args.env)
    registry.renice(registry.get(args.job))
    result = registry.run_job(args.job, settings, **registry.parse_assignments(args.param))
    print(json.dumps(result, default=str))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from pipelines.jobs import registry
    from pipelines.orchestration import cron

    schedules = cron.schedules()
    rows = [
        {"job": name, "notebook": str(spec.notebook), "code": spec.code,
         "in pipeline": "yes" if spec.in_pipeline else "-",
         "service": spec.service.describe() if spec.service else "-",
         "schedule": schedules.get(name, "-"),
         "parameters": spec.describe_params()}
        for name, spec in registry.jobs().items()
    ]  # fmt: skip
    _print_table(rows)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from pipelines.orchestration import loader
    from pipelines.stack import control

    settings = config.load(args.env)
    control.up(settings)
    result = loader.load_window(
        settings, args.start, args.end, progress=not args.no_progress, echo=not args.json
    )
    if args.json:
        print(json.dumps(result, default=str, indent=2))
    return 0


def _promote(
    args: argparse.Namespace, settings: config.Settings, spec: Any
) -> tuple[list[str], Path]:
    """A notebook-native job's spark-submit command: its notebook as a script, parameters
    injected as papermill injects them, under ``outputs/submit/<job>/`` (and its metrics file)."""
    from pipelines.clients.spark import spark_submit
    from pipelines.jobs import notebook_jobs
    from pipelines.jobs.registry import METRICS_PARAM, parse_assignments
    from pipelines.orchestration import runner
    from pipelines.orchestration.ledger import now

    typed = runner.validate(spec, settings.env, parse_assignments(args.param))
    folder = config.outputs_dir() / "submit" / spec.name
    stem = runner.new_run_id(now())
    metrics = folder / f"{stem}.metrics.json"
    values = {**typed.model_dump(mode="json"), METRICS_PARAM: str(metrics)}
    script = notebook_jobs.export_script(spec, values, folder / f"{stem}.py")
    log.info("submit.script", job=spec.name, notebook=str(spec.notebook), script=str(script))
    return [*spark_submit(settings), str(script)], metrics


def cmd_submit(args: argparse.Namespace) -> int:
    from pipelines.clients.spark import submit_command
    from pipelines.core.exceptions import ConfigError
    from pipelines.jobs import notebook_jobs, registry

    settings = config.load(args.env)
    if args.master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": args.master})}
        )
    specs = [registry.get(name) for name in args.job]
    spec = specs[0]
    metrics = None
    if any(s.native for s in specs) and len(specs) > 1:
        raise ConfigError(
            f"submit runs several jobs in one application only when none is a notebook job; "
            f"submit {', '.join(s.name for s in specs if s.native)} on its own"
        )
    if spec.native:  # promoted: nbconvert's script of the notebook, run by spark-submit
        cmd, metrics = _promote(args, settings, spec)
    else:
        cmd = submit_command(settings, args.job, args.param or [])
    log.info("spark.submit", cmd=" ".join(cmd))
    # spark-submit starts Python workers and the driver with PYSPARK_PYTHON: this venv's python
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    if spec.native:  # a script outside the package: this checkout's pipelines first, as for run
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config.REPO_ROOT),
                                                          env.get("PYTHONPATH")]))  # fmt: skip
    spark_log = logs.log_path().with_name(f"submit-{'+'.join(args.job)}.log")
    with logs.quiet_stderr(spark_log):  # Spark's own lines: to that file (not with --verbose)
        # a notebook job runs where papermill runs it: in the repository's root
        code = subprocess.call(cmd, env=env, cwd=config.REPO_ROOT if spec.native else None)
    if code != 0 and not logs.is_verbose():
        tail = spark_log.read_text(errors="replace").splitlines()[-25:]
        print("\n".join([*tail, f"spark-submit failed ({code}); its log: {spark_log}"]),
              file=sys.stderr)  # fmt: skip
    if code == 0 and metrics is not None:  # what the notebook reported, as `job` prints it
        print(json.dumps(notebook_jobs.read_metrics(metrics), default=str))
    return code


def _run_summary(doc: dict[str, object]) -> dict[str, object]:
    keys = ["run_id", "job", "env", "status", "attempt", "duration_s", "rows_in", "rows_out"]
    keys += ["rows_rejected", "notebook", "html"]
    return {k: doc.get(k) for k in keys}


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.jobs import registry
    from pipelines.orchestration import runner

    params = registry.parse_assignments(args.param)
    registry.renice(registry.get(args.job))
    result = runner.run(args.job, args.env, params, trigger=args.trigger)
    doc = result.last
    if args.json:
        print(json.dumps(_run_summary(doc), default=str))
        return 0
    logs.step(runner.summary_line(doc))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from pipelines.jobs import registry
    from pipelines.orchestration import backfill

    def show(outcome: backfill.BackfillOutcome) -> None:
        print(f"{outcome.date}  {outcome.status:<8}  {outcome.run_id or ''}".rstrip(), flush=True)

    params = registry.parse_assignments(args.param)
    outcomes = backfill.backfill(
        args.job, args.date_from, args.date_to, args.env, params, on_outcome=show
    )
    ran = sum(o.status == RunStatus.SUCCESS for o in outcomes)
    print(f"backfill of {args.job}: {ran} run, {len(outcomes) - ran} already done")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from pipelines.core.config import outputs_dir
    from pipelines.jobs import rebuild, registry
    from pipelines.orchestration.locks import JobLock, lock_path
    from pipelines.orchestration.runner import Paths

    settings = config.load(args.env)
    spec = registry.get(rebuild.JOB)
    spec.validate({"env": settings.env, "from_date": args.date_from, "to_date": args.date_to,
                   "by": args.by})  # fmt: skip
    registry.renice(spec)
    lock = JobLock(lock_path(Paths(outputs_dir()).locks, settings.env, spec.name),
                   job=spec.name, env=settings.env)  # fmt: skip
    with lock:  # the lock of `run rebuild` and cron: one rebuild of an env at a time
        result = rebuild.run(settings, args.date_from, args.date_to, restart=args.restart,
                             progress=not args.no_progress, by=args.by)  # fmt: skip
    steps = " · ".join(f"{k} {v:.1f} s" for k, v in result.get("steps", {}).items())
    resumed = (
        f", resumed after {result['skipped_chunks']} {args.by}(s)" if result["resumed"] else ""
    )
    print(
        f"rebuild ({settings.env}): {result['rebuilt_dates']} of {result['dates']} dates in "
        f"{result['chunks']} {args.by}(s){resumed}, {result['seconds']:.1f} s  {steps}".rstrip()
    )
    return 0


def _short_time(value: object) -> object:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return value


def cmd_runs(args: argparse.Namespace) -> int:
    from pipelines.orchestration import backfill

    docs = backfill.recent_runs(args.env, args.job, args.limit)
    if args.json:
        print(json.dumps(docs, default=str, indent=2))
        return 0
    if not docs:
        print("no runs recorded yet")
        return 0
    rows = []
    for d in docs:
        error = d.get("error") or {}
        rows.append(
            {
                "run_id": d.get("run_id"),
                "job": d.get("job"),
                "status": f"{d.get('status')}{' (pending)' if d.get('pending') else ''}",
                "start": _short_time(d.get("start")),
                "secs": d.get("duration_s"),
                "date": d.get("date"),
                "try": d.get("attempt"),
                "in": d.get("rows_in"),
                "out": d.get("rows_out"),
                "rejected": d.get("rows_rejected"),
                "error": f"{error.get('type')}: {str(error.get('message'))[:60]}"
                if error
                else None,
            }
        )
    _print_table(rows)
    return 0
