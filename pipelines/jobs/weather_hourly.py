"""spark-submit entry point of ``weather_hourly`` (the code notebooks run too)."""

from __future__ import annotations

from pipelines.jobs import main

if __name__ == "__main__":
    main("weather_hourly")
