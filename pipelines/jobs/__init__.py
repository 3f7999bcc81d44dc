"""spark-submit entry points: ``spark-submit pipelines/jobs/<job>.py --env <env>``.

``python -m pipelines submit <job>`` builds that command with the right jars and conf.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

JOBS = ("reference_daily", "weather_hourly", "flights_stream")


def run_job(
    name: str,
    settings: Any,
    trigger: str = "availableNow",
    max_offsets_per_trigger: int | None = 200_000,
    day: Any = None,
) -> dict[str, Any]:
    """Run one job in this process; return its result as a dict (``day``: only the landed
    files of that date, for the file jobs)."""
    from pipelines import flights_stream, reference_daily, weather_hourly

    if name == "flights_stream":
        return flights_stream.run(settings, trigger, max_offsets_per_trigger).__dict__
    if name == "weather_hourly":
        return weather_hourly.run(settings, day)
    if name == "reference_daily":
        return reference_daily.run(settings, day)
    raise ValueError(f"unknown job '{name}'; choose from {JOBS}")


def main(name: str) -> None:
    from pipelines import config, logs

    parser = argparse.ArgumentParser(prog=f"{name}.py", description=f"Run the {name} job.")
    parser.add_argument("--env", default=None, help="parameters/<env>.yaml to use")
    if name == "flights_stream":
        parser.add_argument(
            "--trigger",
            default="availableNow",
            help="availableNow (drain and stop) or an interval such as 2s",
        )
        parser.add_argument("--max-offsets-per-trigger", type=int, default=200_000)
    args = parser.parse_args()
    logs.configure()
    settings = config.load(args.env)
    extra = (
        {"trigger": args.trigger, "max_offsets_per_trigger": args.max_offsets_per_trigger}
        if name == "flights_stream"
        else {}
    )
    print(json.dumps(run_job(name, settings, **extra), default=str))
