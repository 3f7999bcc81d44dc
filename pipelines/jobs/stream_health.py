"""A stream query's health, as the page's freshness panel reads it.

After each micro-batch the live board and the lake path record, in their sub-document of
``pipeline_state.flights_stream`` (``hot``, ``lake``: ``docs/data-model.md``), the batch id,
its wall-clock end, the rows it took, the records left in Kafka behind it and its seconds
(:func:`batch_record`); the page turns the age and the lag into a level
(``dashboard.health.STREAM_RULES``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def kafka_lag(progress: Callable[[], dict[str, Any] | None]) -> Callable[[], int | None]:
    """The records left in Kafka after the query's last finished batch (its progress's
    ``latestOffset`` minus ``endOffset``, summed over partitions); None before the first."""

    def lag() -> int | None:
        last = progress()
        if not last or not last.get("sources"):
            return None
        source = last["sources"][0]
        latest, end = (json.loads(v) if isinstance(v, str) else v
                       for v in (source.get("latestOffset"), source.get("endOffset")))  # fmt: skip
        if not isinstance(latest, dict) or not isinstance(end, dict):
            return None
        return sum(
            max(0, int(offset) - int(end.get(topic, {}).get(part, offset)))
            for topic, parts in latest.items()
            for part, offset in parts.items()
        )

    return lag


def batch_record(
    batch_id: int, rows: int, lag: Callable[[], int | None], started: float
) -> dict[str, Any]:
    """A finished micro-batch's health: ``batch_id``, ``at`` (now), ``rows`` taken, ``lag``
    (records left in Kafka; absent before the query's first progress) and ``seconds`` since
    ``started`` (a ``time.monotonic()`` reading)."""
    return {
        "batch_id": batch_id,
        "at": datetime.now(UTC),
        "rows": rows,
        "lag": lag(),
        "seconds": round(time.monotonic() - started, 3),
    }
