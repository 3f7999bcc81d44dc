"""Fault injection for the tests: named points in the code where a test can crash or pause a job.

Off unless the environment variable ``TARMAC_FAULT`` is set (then only the points it names do
anything); :func:`point` costs one ``os.environ`` lookup. ``TARMAC_FAULT`` is a comma-separated
list of ``<point>`` (SIGKILL the job) or ``<point>:pause`` (write ``<point>.reached`` in
``$TARMAC_FAULT_DIR`` and wait until the test creates ``<point>.release``, e.g. to kill a
service at that moment). The kill takes the job's whole process group (driver and its Spark
JVM; from a Python worker also the worker daemon's group), as a crash of the job's machine
would: set the variable only for a job started in its own session (``start_new_session=True``),
as ``tests/test_faults.py`` does.

Points: ``stream.after_lake_write`` (raw events appended, nothing served yet),
``sink.partial_write`` (a Mongo partition half written), ``stream.before_commit`` (the batch
function is done, Kafka offsets not yet committed), ``weather.before_commit`` (rows written
downstream, files not yet moved); the hot path's live board ``board.partial_write`` (half its
buckets raised) and ``board.before_commit`` (its writes done, its offsets not yet committed);
``landing.before_read`` (the landed files checked and counted, Spark not yet reading them:
pause there to rewrite a file in place); ``rebuild.after_chunk`` (a month rebuilt and recorded,
the next not started).

``<point>:drop`` does nothing at a point but makes :func:`active` true there, for points where
the job itself corrupts what it holds on purpose: ``stream.before_count:drop`` drops the rows of
a micro-batch at offsets ending in 9 between Kafka and the count, which the reconciliation of
the batch's offsets must catch (``core/reconcile.py``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "TARMAC_FAULT"
DIR_ENV = "TARMAC_FAULT_DIR"
GROUP_ENV = "TARMAC_FAULT_PGID"  # the job's process group, recorded by its driver

if os.environ.get(ENV) and not os.environ.get(GROUP_ENV):
    # imported by the driver before its Spark JVM starts: the JVM and the Python workers
    # inherit it (PySpark's worker daemon runs in a process group of its own)
    os.environ[GROUP_ENV] = str(os.getpgid(0))


def _actions(name: str) -> list[str]:
    wanted = os.environ.get(ENV)
    if not wanted:
        return []
    return [(item.split(":", 1) + ["kill"])[1] for item in wanted.split(",")
            if item.split(":", 1)[0] == name]  # fmt: skip


def point(name: str) -> None:
    """A named fault point: nothing unless ``TARMAC_FAULT`` names it (see the module doc)."""
    for action in _actions(name):
        if action not in ("kill", "pause"):
            continue  # read by active()
        folder = Path(os.environ.get(DIR_ENV) or ".")
        if action == "pause":
            (folder / f"{name}.reached").write_text(str(os.getpid()))
            while not (folder / f"{name}.release").exists():
                time.sleep(0.05)
            continue
        if os.environ.get(DIR_ENV):
            (folder / f"{name}.killed").write_text(str(os.getpid()))
        job = int(os.environ.get(GROUP_ENV) or os.getpgid(0))
        if os.getpgid(0) != job:  # a Python worker: the job first, then its daemon's group
            os.killpg(job, signal.SIGKILL)
        os.killpg(os.getpgid(0), signal.SIGKILL)


def active(name: str, action: str) -> bool:
    """True when ``TARMAC_FAULT`` names ``<name>:<action>`` (e.g. ``stream.before_count:drop``)."""
    return action in _actions(name)
