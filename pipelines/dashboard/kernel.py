"""What a kernel that serves the page sets for its whole life, before the page is built
(``notebooks/dashboard.ipynb``, before it builds the page): :func:`prepare`.

pandas 3 stores text in Arrow-backed ``str`` columns and labels a frame's columns with an
Arrow-backed index. The page's frames are small (tens to a few thousand rows) and a filter
change selects, sorts, groups and reshapes them a few hundred times: each of those operations
on Arrow text, a column lookup among them, pays a call into Arrow's compute kernels where NumPy
takes an object array in a few microseconds. With text as Python objects
(``future.infer_string`` off: pandas 2's behaviour) the kernel's redraw of every panel after an
airport change over the synthetic year takes 0.72 times the CPU (paired in one process, 120
changes each, 2 cores, 2026-12-08: 134 -> 95 ms mean, p95 175 -> 130 ms). Converting only the
frames the page reads (their text columns) got 0.95: most of the cost is in the frames and
column indexes made during a redraw.

Only in a process that serves one page: the option is global to the process (and pandas warns
that it goes away in pandas 4.0, which ``pyproject.toml`` keeps out: ``pandas<3.2``). Tests and
benchmarks that build a page in-process leave it alone, or set it back
(:func:`text_as_objects` is a context manager too); the page draws the same either way
(``tests/integration/test_dashboard_lookahead.py``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pandas as pd

OPTION = "future.infer_string"


def _get() -> bool:
    with warnings.catch_warnings():  # "deprecated, removed in pandas 4.0": see the module
        warnings.simplefilter("ignore")
        return bool(pd.get_option(OPTION))


def _set(arrow_text: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.set_option(OPTION, arrow_text)


def prepare() -> None:
    """Set up this process to serve the page: text as Python objects (see the module)."""
    _set(False)


@contextlib.contextmanager
def text_as_objects() -> Iterator[None]:
    """Text as Python objects inside the block, as in the page's kernel, restored after (for a
    test or a benchmark in a process that does other work; not thread-safe: the option is the
    process's)."""
    before = _get()
    _set(False)
    try:
        yield
    finally:
        _set(before)
