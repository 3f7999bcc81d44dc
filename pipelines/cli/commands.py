"""What each command of ``tarmac`` does: thin functions over the package, one per
command, returning an exit code (the parser is in :mod:`pipelines.cli`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import structlog

from pipelines.core import config

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
    from pipelines.sources import catch_up, replay

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
    workers = args.workers or (settings.replay.workers if catch_up.parallelizable(run) else 1)
    stats = catch_up.run_parallel(run, workers, args.from_scratch)
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


def cmd_slides(args: argparse.Namespace) -> int:

    from pipelines.presentation import build

    window = (
        args.window_start or build.DEFAULT_WINDOW[0],
        args.window_end or build.DEFAULT_WINDOW[1],
    )
    out = Path(args.out) if args.out else None
    build.build(config.load(args.env), out, window)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:

    from pipelines.orchestration import cron

    return cron.schedule(Path(args.crontab), once=args.once)


def cmd_cron(args: argparse.Namespace) -> int:

    from pipelines.orchestration import cron

    template, root = Path(args.crontab), Path(args.root)
    where = f"crontab: tarmac block for {root.resolve()}"
    env = cron.Environment.current()  # the lines' PATH and JAVA_HOME
    if args.action != "remove":
        env.warn()
    if args.action == "show":
        print(cron.block(template.read_text(), root, env=env), end="")
    elif args.action == "install":
        done = cron.install(root, template, env)
        print(f"{where} {'installed' if done else 'already up to date'}")
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
