"""What a job notebook calls at its end: :func:`report` (or :func:`report_job` of a job's
result dict) writes the run's row counts where the runner asked (``tarmac_metrics_path``, a
papermill parameter), as a JSON sidecar the runner reads after the run."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.core.exceptions import ReconcileError


def report(
    rows_in: int | None = None,
    rows_out: int | None = None,
    rows_rejected: int | None = None,
    path: str | os.PathLike[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record a notebook's metrics for the runner: ``report(rows_in=.., path=tarmac_metrics_path)``.

    Writes a JSON sidecar at ``path`` (the runner's ``tarmac_metrics_path`` parameter; ``None``
    when the notebook runs by hand: nothing is written). ``extra`` values must be JSON-able.
    Returns the metrics, so that the notebook shows them.
    """
    metrics: dict[str, Any] = {}
    for name, value in (
        ("rows_in", rows_in),
        ("rows_out", rows_out),
        ("rows_rejected", rows_rejected),
    ):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a count (int >= 0), got {value!r}")
        metrics[name] = None if value is None else int(value)
    metrics.update(extra)
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(metrics, default=str))
        tmp.replace(target)
    return metrics


def report_job(result: dict[str, Any], path: str | os.PathLike[str] | None = None) -> dict:
    """:func:`report` of a processing job's result (``rows_in``, ``accepted``, ``rejected``
    and any other counts): rows out are the accepted rows. Prints :func:`reconciliation` (so
    the output notebook shows in = accepted + rejected) and fails the run if it does not hold."""
    print(reconciliation(result))
    extra = {k: v for k, v in result.items() if k not in ("rows_in", "accepted", "rejected")}
    return report(result["rows_in"], result["accepted"], result["rejected"], path, **extra)


def reconciliation(result: Mapping[str, Any]) -> str:
    """The line a run's output notebook shows: ``rows: in N = accepted A + rejected R`` (and the
    files of a landing job); raises :class:`ReconcileError` when the counts do not add up."""
    rows_in, accepted, rejected = result["rows_in"], result["accepted"], result["rejected"]
    line = f"rows: in {rows_in} = accepted {accepted} + rejected {rejected}"
    if "files" in result:
        line += (f"; files: {result['files']} processed, {result.get('quarantined', 0)} "
                 f"quarantined (rejected with a reason), {result.get('duplicates', 0)} "
                 f"duplicates")  # fmt: skip
    if rows_in != accepted + rejected:
        raise ReconcileError(f"counts do not reconcile: {line.replace(' = ', ' != ', 1)}; a row "
                             "was lost or counted twice, see the job's log")  # fmt: skip
    return line + "  [reconciled]"
