"""Shared fixtures. The tests mirror the package: ``unit/`` (pure logic, no service, no Spark,
no network), ``integration/`` (one stage or job on the real stack) and ``e2e/`` (the whole path,
the dashboard in a browser). Integration and end-to-end tests run against the real embedded
stack of env ``ci`` (Kafka on 19092, FerretDB on 27018), started once per session and stopped
afterwards if this session started it.

``make test`` runs the modules in parallel (pytest-xdist, ``-n 3 --dist loadfile``: a module's
tests and its module fixtures stay in one worker). The session's stack is then shared by the
workers: the first that needs it starts it (``stack up`` holds the env's lock), the controller
stops it at the end if it was not running when the session began. A test that stops or kills
a service does it on a stack of its own (:func:`dedicated_stack`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pipelines.core import config, logs
from pipelines.core.config import Settings

TEST_ENV = os.environ.get("TARMAC_TEST_ENV", "ci")


SERVICE_FIXTURES = {"stack", "spark", "db", "spark_cluster"}
STACK_BEFORE = pytest.StashKey[dict[str, int | None]]()
CLUSTER = "spark-master"  # in STACK_BEFORE: the standalone cluster of tests.cluster_fixture


def _controller(cfg: pytest.Config) -> bool:
    """The process that owns the session: the only one without pytest-xdist, its controller
    with it (a worker has ``workerinput``)."""
    return not hasattr(cfg, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    logs.configure("WARNING")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note which of the ``ci`` stack's services already run (those are left running)."""
    if _controller(session.config):
        from pipelines.stack.services import services

        settings = config.load(TEST_ENV)
        before = {svc.name: svc.pid() for svc in services(settings)}
        before[CLUSTER] = 1 if _cluster_running(settings) else None
        session.config.stash[STACK_BEFORE] = before


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    """Under ``bench/suite_cpu.py`` (``$TARMAC_SUITE_CPU_DIR``): which test this process (an
    xdist worker) runs now, for the bench to charge the CPU of its descendants to it."""
    if folder := os.environ.get("TARMAC_SUITE_CPU_DIR"):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        (Path(folder) / worker).write_text(f"{os.getpid()} {nodeid}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by folder (``-m "not integration"`` = the unit tests); a unit test may not ask for
    a service or Spark (it would need the stack or the JVM's jars)."""
    for item in items:
        folder = item.path.parent.name
        if folder in ("integration", "e2e"):
            item.add_marker(pytest.mark.integration)
            if folder == "e2e":
                item.add_marker(pytest.mark.e2e)
        elif folder == "unit":
            needs = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
            if needs:
                raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {sorted(needs)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test fails the run: nothing a user relies on may pass by being skipped
    (``TARMAC_ALLOW_SKIPS=1`` to allow it, e.g. while iterating on one file)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and os.environ.get("TARMAC_ALLOW_SKIPS") != "1" and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(f"FAILED: {skipped} test(s) skipped; Tarmac's suite skips none")
    if _controller(session.config) and STACK_BEFORE in session.config.stash:
        _stop_what_the_session_started(session.config.stash[STACK_BEFORE])


def _cluster_running(settings: Settings) -> bool:
    from pipelines.stack.cluster import StandaloneCluster

    cluster = StandaloneCluster(settings)
    return any(r["state"] == "running" for r in cluster.status() if r["service"] == CLUSTER)


def _stop_what_the_session_started(before: dict[str, int | None]) -> None:
    from pipelines.stack.cluster import StandaloneCluster
    from pipelines.stack.services import services

    settings = config.load(TEST_ENV)
    if before.get(CLUSTER) is None and _cluster_running(settings):
        StandaloneCluster(settings).down()  # tests.cluster_fixture: the workers' shared one
    for svc in services(settings):
        if svc.embedded and before.get(svc.name) is None and svc.pid() is not None:
            svc.stop()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load(TEST_ENV)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The real local stack, up for the whole session (whichever worker asks first starts it);
    what the session started is stopped at its end (``pytest_sessionfinish``)."""
    from pipelines.stack import control as stack_mod

    stack_mod.up(settings)
    return settings


@pytest.fixture(scope="session")
def spark(settings: Settings):
    """One local SparkSession for the whole test session (no service needed), its JVM on the
    class archive ``stack up`` builds (built here if no worker's stack is up yet)."""
    from pipelines.clients import cds
    from pipelines.clients.spark import build_session

    cds.ensure(settings)
    session = build_session(settings, "tests")
    yield session
    session.stop()


@pytest.fixture
def db(stack: Settings):
    from pipelines.clients import mongo

    return mongo.database(stack)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic / collection names of one test."""
    return uuid.uuid4().hex[:10]


def isolate(settings: Settings, tmp_path, unique: str) -> Settings:
    """A copy of ``settings`` with its own topics, data and checkpoint folders."""
    return settings.isolated(unique, tmp_path)


def write_parameters(settings: Settings, folder) -> None:
    """Write ``settings`` as ``<folder>/<env>.yaml`` (for subprocesses: TARMAC_PARAMETERS_DIR)."""
    settings.write(folder)


def dedicated_stack(settings: Settings, home: Path, database: str) -> Settings:
    """``settings`` on an embedded stack of its own: Kafka and FerretDB on free ports of
    127.0.0.1, their folders under ``home``; a test may stop or kill its services without
    harming the session's stack (start it with ``control.up``, stop it with ``control.down``)."""
    from pipelines.stack.ports import free_port

    return settings.model_copy(update={
        "stack": settings.stack.model_copy(update={"home": home / "stack"}),
        "kafka": settings.kafka.model_copy(update={"embedded": True,
            "bootstrap_servers": f"127.0.0.1:{free_port()}", "controller_port": free_port()}),
        "mongo": settings.mongo.model_copy(update={"embedded": True,
            "uri": f"mongodb://127.0.0.1:{free_port()}/", "database": database}),
    })  # fmt: skip


@pytest.fixture
def iso(stack: Settings, tmp_path, unique) -> Settings:
    """The running stack's settings, isolated for one test (own topics and folders)."""
    return isolate(stack, tmp_path, unique)
