"""What each command of ``python -m pipelines`` does: thin functions over the package, one per
command, returning an exit code (the parser is in :mod:`pipelines.cli`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from pipelines.core import config, logs

log = structlog.get_logger(__name__)


def _print_table(rows: list[dict[str, object]]) -> None:
    cols = list(rows[0]) if rows else []
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for r in rows:
        print(
            "  ".join(
                str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c]) for c in cols
            )
        )


def cmd_stack(args: argparse.Namespace) -> int:
    from pipelines.stack import control

    settings = config.load(args.env)
    if args.action == "up":
        rows = control.up(settings)
    elif args.action == "down":
        control.down(settings)
        rows = control.status(settings)
    else:
        rows = control.status(settings)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    if args.action == "status":
        return 0 if all(r["answers"] for r in rows) else 1
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from pipelines.stack.cluster import StandaloneCluster

    cluster = StandaloneCluster(config.load(args.env), workers=args.workers)
    if args.action == "up":
        print(f"master: {cluster.up()}")
    elif args.action == "down":
        cluster.down()
    rows = cluster.status()
    if rows:
        _print_table(rows)
    else:
        print(f"no Spark cluster running under {cluster.home}")
    if args.action == "status":
        return 0 if rows and all(r["answers"] for r in rows) else 1
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from pipelines.jobs import smoke

    settings = config.load(args.env)
    if args.produce:
        smoke.produce(settings, args.produce)
    result = smoke.run(settings)
    print(json.dumps(result.__dict__))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.orchestration import demo

    settings = config.load(args.env)
    return demo.run(settings, args.speed, args.start, args.cycles, args.port)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pipelines.stack import voila

    settings = config.load(args.env)
    where = f"http://{args.ip}:{args.port}{args.base_url or '/'}"
    if voila.token_for(args.ip):  # refused here when not local and no token
        where += f"?token=${voila.TOKEN_ENV}"
    print(f"Dashboard ({settings.env}): {where}   Ctrl-C to stop", flush=True)
    return voila.serve(settings.env, args.port, settings.dashboard, args.ip, args.base_url)


def cmd_lab(args: argparse.Namespace) -> int:
    from pipelines.stack import lab

    settings = config.load(args.env)  # an unknown env fails here, before a server starts
    return lab.serve(settings.env, args.port)


def cmd_replay(args: argparse.Namespace) -> int:
    from pipelines.sources import replay

    settings = config.load(args.env)
    run = replay.make(
        settings,
        args.source,
        progress=not args.no_progress,
        start=args.start,
        end=args.end,
        speed=args.speed,
        max_rate=args.max_rate,
        catch_up=args.catch_up,
    )
    workers = args.workers or (settings.replay.workers if replay.parallelizable(run) else 1)
    stats = replay.run_parallel(run, workers, args.from_scratch)
    print(
        json.dumps(
            {
                "sent": stats.sent,
                "dead_lettered": stats.dead_lettered,
                "skipped_before_position": stats.skipped_before_position,
                "position": stats.position,
                "seconds": round(stats.seconds, 2),
                "events_per_s": round(stats.rate),
                "interrupted": stats.interrupted,
            }
        )
    )
    return 130 if stats.interrupted else 0


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
    from pipelines.orchestration import pipeline
    from pipelines.stack import control

    settings = config.load(args.env)
    control.up(settings)
    result = pipeline.load_window(
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
    from pipelines.jobs import notebook_jobs
    from pipelines.jobs.registry import METRICS_PARAM, parse_assignments
    from pipelines.orchestration import runner
    from pipelines.orchestration.ledger import now
    from pipelines.stack.spark import spark_submit

    typed = runner.validate(spec, settings.env, parse_assignments(args.param))
    folder = config.outputs_dir() / "submit" / spec.name
    stem = runner.new_run_id(now())
    metrics = folder / f"{stem}.metrics.json"
    values = {**typed.model_dump(mode="json"), METRICS_PARAM: str(metrics)}
    script = notebook_jobs.export_script(spec, values, folder / f"{stem}.py")
    log.info("submit.script", job=spec.name, notebook=str(spec.notebook), script=str(script))
    return [*spark_submit(settings), str(script)], metrics


def cmd_submit(args: argparse.Namespace) -> int:
    from pipelines.jobs import notebook_jobs, registry
    from pipelines.stack.spark import submit_command

    settings = config.load(args.env)
    if args.master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": args.master})}
        )
    spec = registry.get(args.job)
    metrics = None
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
    spark_log = logs.log_path().with_name(f"submit-{args.job}.log")
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


def cmd_slides(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.presentation import build

    window = (
        args.window_start or build.DEFAULT_WINDOW[0],
        args.window_end or build.DEFAULT_WINDOW[1],
    )
    out = Path(args.out) if args.out else None
    build.build(config.load(args.env), out, window)
    return 0


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
    ran = sum(o.status == "success" for o in outcomes)
    print(f"backfill of {args.job}: {ran} run, {len(outcomes) - ran} already done")
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


def cmd_schedule(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.orchestration import cron

    return cron.schedule(Path(args.crontab), once=args.once)


def cmd_cron(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.orchestration import cron

    template, root = Path(args.crontab), Path(args.root)
    where = f"crontab: tarmac block for {root.resolve()}"
    if args.action == "show":
        print(cron.block(template.read_text(), root), end="")
    elif args.action == "install":
        print(f"{where} {'installed' if cron.install(root, template) else 'already up to date'}")
    else:
        print(f"{where} {'removed' if cron.uninstall(root) else 'not present'}")
    return 0


def _ago(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    s = int(seconds)
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else (
        f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s")  # fmt: skip


def _service_line(st: dict[str, object]) -> str:
    """``flights_stream (env local): running, pid 12, up 3 min 2 s, 0 restarts, log ...``."""
    head = f"{st['job']} (env {st['env']}): {st['status']}"
    if not st["running"]:
        return f"{head}; log {st['log']}"
    return (f"{head}, pid {st['pid']}, up {_ago(st['uptime_s'])}, {st['restarts']} "
            f"restart(s), log {st['log']}")  # fmt: skip


def _service_details(st: dict[str, object]) -> list[str]:
    lines = []
    worker = st.get("worker") or {}
    if isinstance(worker, dict) and worker.get("pid"):
        lines.append(f"  worker     pid {worker['pid']} since {worker.get('started_at')}")
    params = st.get("params") or {}
    if isinstance(params, dict):
        lines.append("  params     " + " ".join(f"{k}={v}" for k, v in params.items()))
    last = st.get("last_exit")
    if isinstance(last, dict):
        why = "asked to stop" if last.get("requested") else "restarted by the supervisor"
        lines.append(f"  last exit  {last.get('text')} after {_ago(last.get('ran_s'))} at "
                     f"{last.get('at')} ({why})")  # fmt: skip
    if st.get("note"):
        lines.append(f"  note       {st['note']}")
    health = st.get("health") or {}
    if isinstance(health, dict):
        if health.get("error"):
            lines.append(f"  health     {health['error']}")
        elif health.get("updated_s_ago") is None:
            lines.append(f"  health     no pipeline_state document '{health.get('state')}' yet")
        else:
            batch = health.get("last_batch") or {}
            rows = f", {batch.get('rows_in')} rows in" if isinstance(batch, dict) and batch else ""
            lines.append(f"  health     last batch {_ago(health['updated_s_ago'])} ago "
                         f"(batch {health.get('last_batch_id', '-')}{rows}), newest event "
                         f"{health.get('newest_event_time', '-')}")  # fmt: skip
        for part in ("hot", "lake"):
            sub = health.get(part)
            if isinstance(sub, dict):
                when = f"{_ago(sub['at_s_ago'])} ago, " if "at_s_ago" in sub else ""
                rest = " ".join(f"{k}={v}" for k, v in sub.items() if k != "at_s_ago")
                lines.append(f"  {part:<10} {when}{rest}")
    return lines


def cmd_service(args: argparse.Namespace) -> int:
    from pipelines.jobs import registry
    from pipelines.orchestration import service, supervisor

    settings = config.load(args.env)
    overrides = registry.parse_assignments(args.param)
    if args.action == "run":
        return supervisor.run(settings, args.job, overrides, echo=not args.detached)
    if args.action in ("start", "ensure"):
        started, st = service.start(settings, args.job, overrides)
        if started:
            print(f"{_service_line(st)}  (started)")
        elif args.action == "ensure":
            print(_service_line(st))
        else:
            print(f"{_service_line(st)}  (already running: nothing done)")
        return 0
    if args.action == "stop":
        t0 = time.monotonic()
        was = service.stop(settings, args.job)
        took = time.monotonic() - t0
        print(f"{args.job} (env {settings.env}): "
              + (f"stopped in {took:.1f} s" if was else "was not running"))  # fmt: skip
        return 0
    st = service.status(settings, args.job)
    if args.json:
        print(json.dumps(st, default=str, indent=2))
    else:
        print("\n".join([_service_line(st), *_service_details(st)]))
    return 0 if st["running"] else 1
