"""Counts of a run that must add up: every input row is accepted or rejected (with a reason).

``runner.report_job`` prints :func:`reconciliation` in the job notebook's last cell, so every
run's output notebook shows ``in = accepted + rejected``, and fails the run when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.core.exceptions import ReconcileError


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
