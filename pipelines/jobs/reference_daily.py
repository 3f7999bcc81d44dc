"""spark-submit entry point of ``reference_daily`` (the code notebooks run too)."""

from __future__ import annotations

from pipelines.jobs import main

if __name__ == "__main__":
    main("reference_daily")
