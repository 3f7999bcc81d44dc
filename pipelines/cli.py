"""``python -m pipelines <command>``: the one command line of Tarmac (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date

import structlog

from . import config, logs
from .exceptions import TarmacError

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
    from . import stack

    settings = config.load(args.env)
    if args.action == "up":
        rows = stack.up(settings)
    elif args.action == "down":
        stack.down(settings)
        rows = stack.status(settings)
    else:
        rows = stack.status(settings)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    if args.action == "status":
        return 0 if all(r["answers"] for r in rows) else 1
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import StandaloneCluster

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
    from . import smoke

    settings = config.load(args.env)
    if args.produce:
        smoke.produce(settings, args.produce)
    result = smoke.run(settings)
    print(json.dumps(result.__dict__))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    settings = config.load(args.env)
    return demo.run(settings, args.speed, args.start, args.cycles, args.port)


def cmd_replay(args: argparse.Namespace) -> int:
    from . import replay

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
    from .jobs import run_job

    settings = config.load(args.env)
    extra = {}
    if args.name == "flights_stream":
        extra = {"trigger": args.trigger, "max_offsets_per_trigger": args.max_offsets}
    print(json.dumps(run_job(args.name, settings, **extra), default=str))
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from . import pipeline, stack

    settings = config.load(args.env)
    stack.up(settings)
    result = pipeline.load_window(settings, args.start, args.end, progress=not args.no_progress)
    print(json.dumps(result, default=str, indent=2))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from .spark import submit_command

    settings = config.load(args.env)
    if args.master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": args.master})}
        )
    cmd = submit_command(settings, args.job, args.job_args)
    log.info("spark.submit", cmd=" ".join(cmd))
    # spark-submit starts Python workers and the driver with PYSPARK_PYTHON: this venv's python
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.call(cmd, env=env)


def cmd_slides(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .presentation import build

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
    from . import runner

    params = runner.parse_assignments(args.param)
    result = runner.run(args.job, args.env, params)
    doc = result.last
    if args.json:
        print(json.dumps(_run_summary(doc), default=str))
        return 0
    tries = f" (attempt {doc['attempt']})" if doc["attempt"] > 1 else ""
    print(
        f"job {doc['job']} (env {doc['env']}) succeeded{tries} in {doc['duration_s']:.1f} s: "
        f"rows in {doc['rows_in']}, out {doc['rows_out']}, rejected {doc['rows_rejected']}\n"
        f"  notebook: {runner.display_path(doc['notebook'])}\n"
        f"  html:     {runner.display_path(doc['html'])}\n"
        f"  run id:   {doc['run_id']}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from . import runner

    def show(outcome: runner.BackfillOutcome) -> None:
        print(f"{outcome.date}  {outcome.status:<8}  {outcome.run_id or ''}".rstrip(), flush=True)

    params = runner.parse_assignments(args.param)
    outcomes = runner.backfill(
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
    from . import runner

    docs = runner.recent_runs(args.env, args.job, args.limit)
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

    from . import cron

    return cron.schedule(Path(args.crontab), once=args.once)


def cmd_cron(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import cron

    template, root = Path(args.crontab), Path(args.root)
    where = f"crontab: tarmac block for {root.resolve()}"
    if args.action == "show":
        print(cron.block(template.read_text(), root), end="")
    elif args.action == "install":
        print(f"{where} {'installed' if cron.install(root, template) else 'already up to date'}")
    else:
        print(f"{where} {'removed' if cron.uninstall(root) else 'not present'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines",
        description="Tarmac: Kafka -> PySpark -> MongoDB -> Voila, scheduled by cron/papermill.",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--env",
            default=None,
            help=f"parameters/<env>.yaml to use (default {config.DEFAULT_ENV})",
        )
        p.set_defaults(func=func)
        return p

    p = add("stack", cmd_stack, "Start, stop or inspect the embedded Kafka + FerretDB stack.")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true", help="print the status as JSON")

    p = add(
        "cluster",
        cmd_cluster,
        "Start, stop or inspect a local Spark standalone cluster (one master, N workers of "
        "1 core and 1g, from pyspark's own spark-class) to try spark-submit --master on.",
    )
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--workers", type=int, default=2, metavar="N", help="workers (default 2)")

    p = add("smoke", cmd_smoke, "Smoke path: Kafka -> Spark (availableNow) -> MongoDB upserts.")
    p.add_argument(
        "--produce",
        type=int,
        default=0,
        metavar="N",
        help="first send N messages to the smoke topic",
    )

    p = add(
        "replay",
        cmd_replay,
        "Replay 2013 on an accelerated clock: flight events to Kafka, weather and "
        "reference data as files in the landing zone.",
    )
    p.add_argument("source", choices=["flights", "weather", "reference", "all"])
    p.add_argument("--start", help="replayed window start, ISO-8601 (default: parameters)")
    p.add_argument("--end", help="replayed window end, exclusive (default: parameters)")
    p.add_argument(
        "--speed", type=float, help="seconds of 2013 per wall-clock second (3600 = 1 h per second)"
    )
    p.add_argument("--max-rate", type=float, help="cap in events per wall-clock second")
    p.add_argument(
        "--catch-up",
        action="store_true",
        default=None,
        help="no pacing: send as fast as the broker takes it",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="forget the saved position of these sources and start at --start",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="producer processes for `flights --catch-up` (default: parameters)",
    )

    p = add("job", cmd_job, "Run one processing job once, in this process (no papermill).")
    p.add_argument("name", choices=["reference_daily", "weather_hourly", "flights_stream"])
    p.add_argument(
        "--trigger",
        default="availableNow",
        help="flights_stream: availableNow (drain, stop) or an interval like 2s",
    )
    p.add_argument(
        "--max-offsets",
        type=int,
        default=200_000,
        help="flights_stream: Kafka records per micro-batch at most",
    )

    p = add(
        "pipeline",
        cmd_pipeline,
        "Replay a window of 2013 (catch-up) and run every job once: the real path, "
        "Kafka -> Spark -> MongoDB. `make backfill` runs the whole year.",
    )
    p.add_argument("--start", default="2013-01-01T00:00:00Z", help="window start (ISO-8601)")
    # the last flights of 31 Dec 2013 (local) depart and land after midnight UTC
    p.add_argument("--end", default="2014-01-02T00:00:00Z", help="window end, exclusive")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add(
        "demo",
        cmd_demo,
        "The whole product on the embedded stack: stack up, 2013 replayed on an "
        "accelerated clock, the jobs run by the runner in a loop, the dashboard served. "
        "Ctrl-C stops everything it started.",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=300.0,
        help="seconds of 2013 per wall-clock second (default 300: an hour in 12 s)",
    )
    p.add_argument("--start", default="2013-01-01T00:00:00Z", help="replay start")
    p.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="stop after N rounds of the jobs (default: until Ctrl-C)",
    )
    p.add_argument("--port", type=int, default=8866, help="dashboard port (127.0.0.1 only)")

    p = add(
        "submit",
        cmd_submit,
        "Run pipelines/jobs/<job>.py with spark-submit (same jars and conf as notebooks).",
    )
    p.add_argument("job", help="job name, e.g. smoke")
    p.add_argument(
        "--master",
        default=None,
        help="Spark master URL (spark://host:7077, yarn, k8s://...); default: spark.master of ENV",
    )
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments passed to the job")
    p = add(
        "run",
        cmd_run,
        "Run a catalog job notebook with papermill: validated parameters, job lock, timeout, "
        "retries of transient failures, ledger in MongoDB (pipeline_runs).",
    )
    p.add_argument("job", help="job name from pipelines/catalog.py, e.g. smoke")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a job parameter (repeatable); checked against the job's parameters before running",
    )
    p.add_argument("--json", action="store_true", help="print the run's ledger summary as JSON")

    p = add(
        "backfill",
        cmd_backfill,
        "Run a dated job for each date from --from to --to, in order; dates whose last run "
        "succeeded are skipped; stops at the first failure.",
    )
    p.add_argument("job", help="a job with a date parameter, e.g. reference_daily")
    p.add_argument(
        "--from", dest="date_from", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD"
    )
    p.add_argument(
        "--to", dest="date_to", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD"
    )
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="job parameter")

    p = add("runs", cmd_runs, "The latest runs recorded in the ledger (newest first).")
    p.add_argument("--job", default=None, help="only this job")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help="print the ledger documents as JSON")

    p = add(
        "schedule",
        cmd_schedule,
        "Foreground scheduler for machines without cron: runs the lines of cron/tarmac.crontab "
        "at their times (--env is not used: each line names its own).",
    )
    p.add_argument("--once", action="store_true", help="run what is due this minute, then exit")
    p.add_argument("--crontab", default=str(config.REPO_ROOT / "cron" / "tarmac.crontab"))

    p = add(
        "cron",
        cmd_cron,
        "Install, remove or show cron/tarmac.crontab in the user's crontab, rendered for this "
        "checkout between '# BEGIN/END tarmac <root>' markers (--env is not used).",
    )
    p.add_argument("action", choices=["install", "remove", "show"])
    p.add_argument("--root", default=str(config.REPO_ROOT), help="checkout the lines cd into")
    p.add_argument("--crontab", default=str(config.REPO_ROOT / "cron" / "tarmac.crontab"))
    p = add(
        "slides",
        cmd_slides,
        "Build the presentation (notebooks/90_presentation.ipynb) into outputs/presentation/: "
        "tarmac.slides.html (reveal.js, offline) and tarmac.pdf, from ENV's serving collections, "
        "ledger and outputs/bench; starts the stack, loads a small window when ENV serves "
        "nothing, screenshots the dashboard, stops what it started (`make slides`).",
    )
    p.add_argument("--out", default=None, help="output folder (default outputs/presentation)")
    p.add_argument("--window-start", help="window loaded when ENV serves nothing (ISO-8601, "
                   "default 2013-01-01)")  # fmt: skip
    p.add_argument("--window-end", help="its end, exclusive (default 2013-01-03)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    try:
        return args.func(args)
    except TarmacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
