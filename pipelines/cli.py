"""``python -m pipelines <command>``: the one command line of Tarmac (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence

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


def cmd_smoke(args: argparse.Namespace) -> int:
    from . import smoke

    settings = config.load(args.env)
    if args.produce:
        smoke.produce(settings, args.produce)
    result = smoke.run(settings)
    print(json.dumps(result.__dict__))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import smoke, stack

    settings = config.load(args.env)
    _print_table(stack.up(settings))
    smoke.produce(settings, args.messages)
    result = smoke.run(settings)
    print(
        f"\nsmoke path: {result.rows_read} messages read from Kafka by Spark, "
        f"{result.documents} documents in MongoDB collection "
        f"{settings.mongo.database}.{smoke.COLLECTION}"
    )
    print(f"stop the stack with: make stack-down ENV={settings.env}")
    return 0


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


def cmd_submit(args: argparse.Namespace) -> int:
    from .spark import submit_command

    settings = config.load(args.env)
    cmd = submit_command(settings, args.job, args.job_args)
    log.info("spark.submit", cmd=" ".join(cmd))
    return subprocess.call(cmd)


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

    p = add("demo", cmd_demo, "The main job on the embedded stack: stack up, then the pipeline.")
    p.add_argument("--messages", type=int, default=1000, help="smoke messages to send")

    p = add(
        "submit",
        cmd_submit,
        "Run pipelines/jobs/<job>.py with spark-submit (same jars and conf as notebooks).",
    )
    p.add_argument("job", help="job name, e.g. smoke")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments passed to the job")
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
