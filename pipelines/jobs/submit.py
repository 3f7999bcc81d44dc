"""The one spark-submit entry point of every job of the registry:

    spark-submit [spark options] pipelines/jobs/submit.py <job> [<job> ...] --env <env>
        [-p name=value ...]

``tarmac submit <job> [<job> ...]`` builds that command with the project's jars and
conf. The jobs run one after the other in the driver spark-submit starts (one application: one
driver and one set of executors for all of them, which a cluster starts in 20 to 40 s), with the
same code as their notebooks and ``job``; each prints its result as one JSON line. ``-p`` values
go to every job named (one that does not take a parameter refuses it before anything runs).
"""

from __future__ import annotations

import argparse
import json

from pipelines.core import config, logs, signals
from pipelines.jobs import registry


def build_parser() -> argparse.ArgumentParser:
    jobs = registry.jobs()
    parser = argparse.ArgumentParser(
        prog="submit.py",
        description="Run jobs of the registry, in order, in this Spark driver.",
        epilog="jobs: " + "; ".join(f"{n} ({s.describe_params()})" for n, s in jobs.items()),
    )
    parser.add_argument("jobs", nargs="+", choices=sorted(jobs), metavar="job",
                        help="the jobs to run, in order")  # fmt: skip
    parser.add_argument("--env", default=None, help="parameters/<env>.yaml to use")
    parser.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                        help="a job parameter (repeatable)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()
    signals.install()  # SIGTERM / SIGHUP stop the job like Ctrl-C
    settings = config.load(args.env)
    params = registry.parse_assignments(args.param)
    for job in args.jobs:  # every job's parameters checked before the first runs
        registry.get(job).validate({"env": settings.env, **params})
    for job in args.jobs:
        result = registry.run_job(job, settings, **params)
        print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
