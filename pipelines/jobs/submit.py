"""The one spark-submit entry point of every job of the registry:

    spark-submit [spark options] pipelines/jobs/submit.py <job> --env <env> [-p name=value ...]

``python -m pipelines submit <job>`` builds that command with the project's jars and conf. The
job runs in the driver spark-submit starts, with the same code as its notebook and ``job``.
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
        description="Run one job of the registry in this Spark driver.",
        epilog="jobs: " + "; ".join(f"{n} ({s.describe_params()})" for n, s in jobs.items()),
    )
    parser.add_argument("job", choices=sorted(jobs), help="the job to run")
    parser.add_argument("--env", default=None, help="parameters/<env>.yaml to use")
    parser.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                        help="a job parameter (repeatable)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()
    signals.install()  # SIGTERM / SIGHUP stop the job like Ctrl-C
    settings = config.load(args.env)
    result = registry.run_job(args.job, settings, **registry.parse_assignments(args.param))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
