"""Which Delta errors a lake step runs again (``lake.tables.retrying``): commit conflicts
between two writers, the first creation of a table by two of them at once among them; any
other error is raised at once."""

from __future__ import annotations

import pytest

from pipelines.lake import tables


@pytest.mark.parametrize(
    "text",
    [
        "io.delta.exceptions.ConcurrentAppendException: Files were added to partition [date=x]",
        "io.delta.exceptions.ProtocolChangedException: [DELTA_PROTOCOL_CHANGED] The protocol "
        "version of the Delta table has been changed by a concurrent update. This happens when "
        "multiple writers are writing to an empty directory.",
        "[DELTA_CONCURRENT_WRITE] ConcurrentWriteException: A concurrent transaction has written",
    ],
)
def test_a_commit_conflict_is_run_again(text: str) -> None:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(text)
        return "written"

    assert tables.is_conflict(RuntimeError(text))
    assert tables.retrying(step, "a step") == "written" and len(calls) == 2


def test_any_other_error_is_raised_at_once() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        raise RuntimeError("[PATH_NOT_FOUND] Path does not exist: file:/lake/raw/x")

    with pytest.raises(RuntimeError, match="PATH_NOT_FOUND"):
        tables.retrying(step, "a step")
    assert len(calls) == 1


def test_deltas_own_conflict_exception_is_run_again() -> None:
    """What Delta's Python API raises for a write on the driver (``delta.exceptions``), whatever
    its message says."""
    from delta.exceptions import ConcurrentAppendException

    assert tables.is_conflict(ConcurrentAppendException("files were added"))
