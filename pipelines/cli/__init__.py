"""``tarmac <command>``: the one command line of Tarmac (``--help`` on each).

``tarmac`` is the console script pyproject.toml declares (``pipelines.cli:main``);
``python -m pipelines`` runs the same :func:`main`.

Which command runs a job? Every job is in the one registry (``tarmac jobs``):
a module of pipelines/jobs/ with its notebook, or a notebook-native job (a notebook whose
metadata holds ``tarmac.job``; docs/notebooks.md); run, backfill, job and submit take either:

- ``run``: the production path, as cron does it: the job's notebook through papermill, its
  parameters checked, a lock, a timeout, retries of transient failures, the run ledger, an HTML
  report of the output notebook;
- ``backfill``: ``run`` once per date of a range (dates already done are skipped);
- ``rebuild``: the clean and serving tables and the documents of a range of dates recomputed
  from the raw lake, with a progress bar (the ``rebuild`` job in this process, its lock taken);
- ``job``: the job's code in this process, no notebook, no ledger: for debugging (a
  notebook-native job: its notebook as a script, no kernel);
- ``submit``: the job with spark-submit, on any Spark master: the cluster path (a
  notebook-native job: nbconvert's script of its notebook, parameters injected as papermill
  does, under outputs/submit/<job>/);
- ``pipeline``: replay a window of 2013, then every data job once, in order (tests, backfills);
- ``service``: a long-lived job (the flight stream) supervised in the background: restarted
  when it dies, stopped cleanly; ``service ensure`` is cron's watchdog;
- ``dashboard``: the Voila page of an env, served until stopped (kernels of closed pages culled);
- ``lab``: JupyterLab on ``notebooks/`` for exploring an env's lake, served until stopped;
- ``demo``: the whole product: stack, replay on a clock, the stream as a service, the file jobs
  on their schedule, the dashboard.

SIGTERM and SIGHUP are taken as Ctrl-C by every command: what was started is stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date

from pipelines.core import config, logs, signals
from pipelines.core.exceptions import TarmacError

from .commands import (
    cmd_cluster,
    cmd_cron,
    cmd_dashboard,
    cmd_demo,
    cmd_lab,
    cmd_replay,
    cmd_schedule,
    cmd_service,
    cmd_slides,
    cmd_smoke,
    cmd_stack,
)
from .jobs import (
    cmd_backfill,
    cmd_job,
    cmd_jobs,
    cmd_pipeline,
    cmd_rebuild,
    cmd_run,
    cmd_runs,
    cmd_submit,
)

SHORT = {  # the one-line help of each command in `--help`; each has a longer --help of its own
    "demo": "the whole product: stack, replay on a clock, stream service, jobs, dashboard",
    "dashboard": "serve the Voila dashboard until Ctrl-C (make dashboard)",
    "lab": "serve JupyterLab on notebooks/ for exploring ENV's lake until Ctrl-C (make lab)",
    "pipeline": "replay a window of 2013, then every data job once, in order",
    "run": "run a job's notebook as cron does (papermill, lock, retries, ledger)",
    "backfill": "`run` a dated job once per date of a range",
    "rebuild": "recompute clean + serving tables and documents from the raw lake (resumable)",
    "job": "run a job's code in this process, no notebook (debugging)",
    "submit": "run a job with spark-submit on any Spark master (cluster)",
    "jobs": "list the jobs of the registry",
    "service": "a long-lived job as a supervised service: start, stop, status, run, ensure",
    "runs": "the latest runs of the ledger",
    "schedule": "a foreground scheduler of cron/tarmac.crontab (no cron needed)",
    "cron": "install, remove or show the crontab lines of this checkout",
    "replay": "replay 2013: events to Kafka, files to the landing zone",
    "stack": "start, stop or inspect the embedded Kafka + FerretDB",
    "cluster": "start, stop or inspect a local Spark standalone cluster",
    "smoke": "Kafka -> Spark -> MongoDB smoke path",
    "slides": "build the presentation: offline HTML slides and their PDF",
}


def job_arguments(p: argparse.ArgumentParser, what: str = "a job of `jobs`, e.g. smoke") -> None:
    """The job and its ``-p name=value`` parameters (checked against its model before running)."""
    p.add_argument("job", help=what)
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a job parameter, e.g. -p date=2013-01-02 (repeatable)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tarmac",
        description="Tarmac: Kafka -> PySpark -> MongoDB -> Voila, scheduled by cron/papermill.",
        epilog=__doc__[__doc__.index("Which command") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="every log line on the console (Spark, papermill, kernels); "
        "otherwise they go to outputs/logs/tarmac.log",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=SHORT[name], description=help)
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

    p = add(
        "jobs",
        cmd_jobs,
        "List the jobs of the registry: notebook, code (a module, or `notebook` for a "
        "notebook-native job), schedule (the crontab's), parameters. Notebook-native jobs: "
        "notebooks/*.ipynb whose metadata holds tarmac.job, and those of $TARMAC_JOBS_NOTEBOOKS.",
    )

    p = add(
        "job",
        cmd_job,
        "Run a job's code once in this process, without papermill, ledger or retries: for "
        "debugging and quick loops. Cron and people use `run`.",
    )
    job_arguments(p)

    p = add(
        "service",
        cmd_service,
        "A long-lived job of the registry (one with a service spec, e.g. flights_stream) as a "
        "supervised service: its worker (`job <name> -p <service parameters>`) restarted with "
        "backoff when it dies, one instance per env, pid file under outputs/services/<env>/, "
        "log outputs/logs/service-<name>-<env>.log. start: in the background, returns once the "
        "worker runs; stop: SIGTERM (the job's Ctrl-C), SIGKILL after a grace; status: exit 0 "
        "running, 1 stopped; run: the supervisor in the foreground (docker-compose); ensure: "
        "start unless it runs (cron's watchdog).",
    )
    p.add_argument("action", choices=["start", "stop", "status", "run", "ensure"])
    job_arguments(p, "a job with a service spec (`jobs` lists them), e.g. flights_stream")
    p.add_argument("--json", action="store_true", help="status: print it as JSON")
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # set by start

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
    p.add_argument("--json", action="store_true", help="print every job's result as JSON")

    p = add(
        "demo",
        cmd_demo,
        "The whole product on the embedded stack: stack up, 2013 replayed on an "
        "accelerated clock, the flight stream as a service, the file jobs run by the runner "
        "when the replay lands their files, the dashboard served. Ctrl-C (or SIGTERM, SIGHUP) "
        "stops everything it started.",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="seconds of 2013 per wall-clock second (default 24: a day in an hour, at which "
        "every freshness pill stays green; see pipelines/orchestration/demo.py)",
    )
    p.add_argument("--start", default="2013-01-01T00:00:00Z", help="replay start")
    p.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="stop after N runs of the weather job (default: until Ctrl-C)",
    )
    p.add_argument("--port", type=int, default=8866, help="dashboard port (127.0.0.1 only)")

    p = add(
        "dashboard",
        cmd_dashboard,
        "Serve the dashboard (notebooks/dashboard.ipynb) with Voila on 127.0.0.1:PORT until "
        "Ctrl-C, SIGTERM or SIGHUP, which stop Voila and every kernel. A kernel whose page is "
        "gone is stopped after dashboard.kernel_idle_s (parameters/<env>.yaml, 600 s); "
        "dashboard.pool_size kernels (1) wait preheated for the next visit.",
    )
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument(
        "--ip", default="127.0.0.1",
        help="listen on (127.0.0.1; a container: 0.0.0.0, which needs $TARMAC_DASHBOARD_TOKEN)",
    )  # fmt: skip
    p.add_argument("--base-url", default=None, help="a path prefix behind a proxy, e.g. /tarmac/")

    p = add(
        "lab",
        cmd_lab,
        "Serve JupyterLab (notebooks/, this virtualenv's kernel with this checkout's pipelines, "
        "TARMAC_ENV=ENV) on 127.0.0.1:PORT with a token, until Ctrl-C, SIGTERM or SIGHUP, which "
        "stop it and its kernels. In a notebook, `from pipelines.lake.views import "
        "lake_session; spark = lake_session()` opens ENV's lake: raw.*, clean.*, serving.* "
        "(docs/notebooks.md).",
    )
    p.add_argument("--port", type=int, default=8888, help="port (default 8888)")

    p = add(
        "submit",
        cmd_submit,
        "Run a job with spark-submit on any Spark master (pipelines/jobs/submit.py, the same "
        "jars and conf as the notebooks): the cluster path. A notebook-native job is promoted: "
        "nbconvert turns its notebook into outputs/submit/<job>/<stamp>.py with the parameters "
        "injected as papermill injects them, and spark-submit runs that script; the last line "
        "printed is what the notebook reported. Several jobs run in order in one application "
        "(one driver and one set of executors), each printing its result as a JSON line; "
        "-p values go to each of them.",
    )
    p.add_argument("job", nargs="+", help="jobs of `jobs`, run in order, e.g. smoke")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a job parameter, e.g. -p date=2013-01-02 (repeatable)")  # fmt: skip
    p.add_argument(
        "--master",
        default=None,
        help="Spark master URL (spark://host:7077, yarn, k8s://...); default: spark.master of ENV",
    )

    p = add(
        "run",
        cmd_run,
        "Run a registry job's notebook with papermill: validated parameters, job lock, timeout, "
        "retries of transient failures, ledger in MongoDB (pipeline_runs).",
    )
    job_arguments(p)
    p.add_argument("--json", action="store_true", help="print the run's ledger summary as JSON")
    p.add_argument("--trigger", default="manual", help="who asks, for the ledger: manual, "
                   "cron, demo (default manual)")  # fmt: skip

    p = add(
        "backfill",
        cmd_backfill,
        "Run a dated job for each date from --from to --to, in order; dates whose last run "
        "succeeded are skipped; stops at the first failure.",
    )
    job_arguments(p, "a job with a date parameter, e.g. reference_daily")
    p.add_argument(
        "--from", dest="date_from", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD"
    )
    p.add_argument(
        "--to", dest="date_to", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD"
    )

    p = add(
        "rebuild",
        cmd_rebuild,
        "Recompute clean/* and serving/* and rewrite the MongoDB documents of the local dates "
        "--from .. --to (default: every date of raw/flight_events) from the raw lake, a quarter "
        "at a time (--by), in this process with a progress bar; safe while the stream runs; a "
        "rebuild that died resumes from the first chunk it had not finished (--restart: start "
        "over). "
        "The same as `run rebuild -p from_date=.. -p to_date=..` without papermill.",
    )
    p.add_argument("--from", dest="date_from", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="first local date (default: the raw log's first)")  # fmt: skip
    p.add_argument("--to", dest="date_to", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="last local date (default: the raw log's last)")  # fmt: skip
    p.add_argument(
        "--restart",
        action="store_true",
        help="start over instead of resuming an unfinished rebuild of the same range",
    )
    p.add_argument(
        "--by",
        choices=("month", "quarter", "year"),
        default="quarter",
        help="rebuilt at once and recorded when done: the resume grain (default quarter; the "
        "year of 2013: by month 152 s, quarter 89 s, year 67 s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("runs", cmd_runs, "The latest runs recorded in the ledger (newest first).")
    p.add_argument("--job", default=None, help="only this job")
    # housekeeping keeps at least this many runs of each job (jobs.retention.RUNS_CLI_LIMIT)
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
    logs.configure(args.log_level, verbose=args.verbose)
    signals.install()  # SIGTERM, SIGHUP: the Ctrl-C path below
    try:
        return args.func(args)
    except TarmacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
