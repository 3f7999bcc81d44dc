"""Fault injection against the real stack: services and jobs SIGKILLed at chosen moments.

Jobs run as real child processes (``python -m pipelines job|run ...``) in their own session;
``TARMAC_FAULT`` (``pipelines/core/faults.py``) kills or pauses them at a named point. Kafka and
FerretDB are killed on a *dedicated* stack this module starts on free ports under ``tmp_path``
(the session's ``ci`` stack is never harmed) and restarted with the same code
(``services.Service.start``). Every outcome is compared with an uninterrupted run, document for
document (``test_processing.snapshot``).

The window is prepared once per module (``prepared``: landed, ``reference_daily`` and
``weather_hourly`` run) and every stream test crashes a copy of it of its own (``_branch``: lake
and data folder copied, database copied, checkpoints of its own; the events topic shared, read
only, or replayed into the dedicated Kafka); the uninterrupted run is made once, from another
copy. A killed job's rerun runs in this process (``_rerun``: the registry entry that
``python -m pipelines job`` runs, with the same parameters; what the crash left is in the lake,
the checkpoints, the manifest, Kafka and MongoDB); the FerretDB test's failed run goes through
the runner as cron does, for its ledger record.

Recovery times are printed (``-s``) as ``recovery <fault> <seconds>``. Measured on 2 cores
shared with another test session (load 3-6): stream reruns 40 / 48 / 55 s (after the lake write
/ mid Mongo write / before the commit), hot path rerun 30 s, weather rerun 7 s, Kafka restart
15 s with the replay done 27 s after the kill (no rerun), FerretDB: the job failed 9 s after
the kill, restart 0.5 s, next run 81 s; the module took 13.6 min there (23.5 min the same day,
at load 6-12, when each test landed and prepared its own window and reran in a fresh process;
see docs/reliability.md). Nothing here asserts a duration.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from pipelines.clients import mongo
from pipelines.clients.spark import build_session
from pipelines.core.config import Settings
from pipelines.core.exceptions import LandingError
from pipelines.jobs import flights_stream, reference_daily, registry, weather_hourly
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.landing import ingest
from pipelines.landing.zone import LandingZone
from pipelines.orchestration.ledger import Ledger
from pipelines.serving import readmodels
from pipelines.sources import replay
from pipelines.stack import control
from pipelines.stack.services import FerretDBService, KafkaService, services
from tests.conftest import dedicated_stack, isolate, write_parameters
from tests.e2e.test_processing import snapshot, without_times

pytestmark = pytest.mark.integration

START = datetime(2013, 3, 4, 10, tzinfo=UTC)
END = datetime(2013, 3, 4, 20, tzinfo=UTC)  # 10 h: ~1,500 events, ~30 weather files
BATCH = "400"  # max offsets per micro-batch of a run to kill: the window (1,514 events) is 4
# batches, a kill in the first leaves three unprocessed. The uninterrupted run and the reruns
# take the job's default (the whole window in one batch; a rerun replays the killed batch as
# its offset log planned it, then the rest at once): the documents may not depend on batching


def _fresh(base: Settings, tmp: Path, tag: str) -> Settings:
    unique = uuid.uuid4().hex[:8]
    settings = isolate(base, tmp / unique, unique)
    return settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{base.mongo.database}_{tag}_{unique}"})})  # fmt: skip


def _env(settings: Settings, tmp: Path, fault: str | None = None) -> dict[str, str]:
    params = tmp / f"params-{uuid.uuid4().hex[:6]}"
    write_parameters(settings, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params), "TARMAC_FAULT_DIR": str(tmp)}
    env.pop("TARMAC_FAULT", None)
    if fault:
        env["TARMAC_FAULT"] = fault
    return env


def _job(settings: Settings, job: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "job", job, "--env", settings.env, *args]


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # its own session: a fault kills its whole process group
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s process group if it still runs (a failed test leaves nothing behind)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _finish(proc: subprocess.Popen, timeout: float = 900) -> int:
    try:
        return proc.wait(timeout)
    finally:
        _stop(proc)


def _rerun(settings: Settings, job: str, *params: str) -> float:
    """Run ``job`` to success after its process was killed, in this process: the registry
    entry and parameters ``python -m pipelines job <job> -p k=v`` runs (the crash left its
    state in the lake, the checkpoints, the landing manifest, Kafka and MongoDB, where a fresh
    process finds it too; this one's JVM is already up). Its wall time."""
    t0 = time.monotonic()
    registry.run_job(job, settings, **registry.parse_assignments(list(params)))
    return time.monotonic() - t0


def _land(settings: Settings, sources: str = "all", from_scratch: bool = False) -> None:
    replay.make(settings, sources, progress=False, start=START, end=END, catch_up=True).run(
        from_scratch=from_scratch
    )


def _drop(settings: Settings) -> None:
    db = mongo.database(settings)
    db.client.drop_database(db.name)


# ------------------------------------------------------- the stream killed inside one batch
@pytest.fixture(scope="module")
def prepared(stack: Settings, tmp_path_factory) -> Iterator[Settings]:
    """The window landed (flight events in Kafka, weather and reference files) and
    ``reference_daily`` and ``weather_hourly`` run once: the state every stream test starts
    from, each from a copy of its own (:func:`_branch`)."""
    settings = _fresh(stack, tmp_path_factory.mktemp("faults_prep"), "prep")
    _land(settings)
    reference_daily.run(settings)
    weather_hourly.run(settings)
    yield settings
    _drop(settings)


def _copy_db(source: Settings, target: Settings) -> None:
    """Every collection of ``source``'s database (documents and indexes) into ``target``'s,
    which may be on another server."""
    src, dst = mongo.database(source), mongo.database(target)
    for name in src.list_collection_names():
        for index, info in src[name].index_information().items():
            if index != "_id_":
                options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
                dst[name].create_index(info["key"], name=index, **options)
        if docs := list(src[name].find({})):
            dst[name].insert_many(docs)


def _branch(prepared: Settings, onto: Settings, tmp: Path, tag: str) -> Settings:
    """A copy of the ``prepared`` state that a test may crash, on ``onto``'s services: the
    lake and the data folder copied, the database copied, checkpoints of its own. On the
    same Kafka the flight events topic is shared (the stream only reads it, each copy from its
    own checkpoint); on another one the events are replayed into topics of its own."""
    settings = _fresh(onto, tmp, tag)
    shutil.copytree(prepared.resolve(prepared.paths.data), settings.resolve(settings.paths.data))
    shutil.copytree(prepared.lake_root, settings.lake_root)
    _copy_db(prepared, settings)
    if onto.kafka.bootstrap_servers == prepared.kafka.bootstrap_servers:
        return settings.model_copy(update={"kafka": prepared.kafka})
    _land(settings, "flights", from_scratch=True)  # the copied position is the other Kafka's
    return settings


@pytest.fixture(scope="module")
def uninterrupted(
    stack: Settings, prepared: Settings, tmp_path_factory
) -> Iterator[dict[str, list[dict]]]:
    """The documents of the window after reference, weather and stream ran undisturbed."""
    settings = _branch(prepared, stack, tmp_path_factory.mktemp("faults_ref"), "ref")
    flights_stream.run(settings)
    yield snapshot(mongo.database(settings), times=False)
    _drop(settings)


@pytest.mark.parametrize(
    "point", ["stream.after_lake_write", "sink.partial_write", "stream.before_commit"]
)
def test_stream_killed_inside_a_batch_ends_in_the_same_state(
    stack: Settings, prepared: Settings, uninterrupted, tmp_path: Path, point: str
) -> None:
    """SIGKILL during the lake write (raw events appended, nothing served), during the MongoDB
    writes (half a partition written), and after the writes before the checkpoint commit: the
    rerun converges to the uninterrupted documents. Each starts from its own copy of the
    prepared window (reference and weather already run)."""
    settings = _branch(prepared, stack, tmp_path, "kill")
    try:
        log = tmp_path / "stream.log"
        params = [f"max_offsets_per_trigger={BATCH}"]
        cmd = _job(settings, "flights_stream", *(a for p in params for a in ("-p", p)))
        rc = _finish(_spawn(cmd, _env(settings, tmp_path, point), log))
        assert rc == -signal.SIGKILL and (tmp_path / f"{point}.killed").exists(), log.read_text()
        seconds = _rerun(settings, "flights_stream")
        print(f"recovery stream@{point} {seconds:.1f}")
        assert snapshot(mongo.database(settings), times=False) == uninterrupted
    finally:
        _drop(settings)


def _hot_docs(db, collection: str) -> list[dict]:
    """Each bucket as the hot path wrote it (``readmodels.HOT_OF``), as its readers see it in
    ``collection``'s shape (``readmodels.hot_view``)."""
    hot = db[readmodels.HOT_OF[collection]].find({})
    docs = (without_times(readmodels.hot_view(collection, d)) for d in hot)
    return sorted(docs, key=lambda d: d["_id"])


def _lake_fields(docs: list[dict]) -> list[dict]:
    return sorted((without_times(d) for d in docs), key=lambda d: d["_id"])


def test_hot_path_killed_inside_a_batch_serves_the_lake_paths_documents(
    stack: Settings, prepared: Settings, uninterrupted, tmp_path: Path
) -> None:
    """The hot path alone (``-p hot=true -p lake=false``), SIGKILLed in its live board with
    half its buckets raised, then after its board writes before its offsets are committed:
    the rerun's hot documents (the board buckets and the hour rows derived from them) are the
    uninterrupted lake path's, field for field (the hot path never reads the lake inside a
    batch; the reference and weather it joins are the ones the lake path joined)."""
    settings = _branch(prepared, stack, tmp_path, "hot")
    try:
        log = tmp_path / "hot.log"
        hot_only = ["hot=true", "lake=false"]
        params = [*hot_only, f"max_offsets_per_trigger={BATCH}"]
        cmd = _job(settings, "flights_stream", *(a for p in params for a in ("-p", p)))
        points = ("board.partial_write", "board.before_commit")
        for point in points:
            rc = _finish(_spawn(cmd, _env(settings, tmp_path, point), log))
            assert rc == -signal.SIGKILL and (tmp_path / f"{point}.killed").exists(), (
                log.read_text()[-3000:]
            )
        seconds = _rerun(settings, "flights_stream", *hot_only)
        print(f"recovery hot@{'+'.join(points)} {seconds:.1f}")
        db = mongo.database(settings)
        for collection in (readmodels.BOARD, readmodels.KPI_HOURLY):
            assert _hot_docs(db, collection) == _lake_fields(uninterrupted[collection])
    finally:
        _drop(settings)


# ------------------------------------------------- the weather job killed before its moves
def test_weather_killed_between_rows_and_moves_processes_each_file_once(
    stack: Settings, uninterrupted, tmp_path: Path
) -> None:
    settings = _fresh(stack, tmp_path, "wx")
    try:
        _land(settings, "weather")
        lz = ingest.zone(settings)
        files = {f.name: f.sha256 for f in lz.pending("weather")}
        log = tmp_path / "weather.log"
        cmd = _job(settings, "weather_hourly")
        rc = _finish(_spawn(cmd, _env(settings, tmp_path, "weather.before_commit"), log))
        assert rc == -signal.SIGKILL, log.read_text()
        assert sorted(f.name for f in lz.pending("weather")) == sorted(files)  # none moved
        assert {r["status"] for r in lz.manifest.records("weather")} == {"claimed"}
        seconds = _rerun(settings, "weather_hourly")
        print(f"recovery weather@before_commit {seconds:.1f}")

        records = lz.manifest.records("weather")
        assert sorted((r["name"], r["sha256"]) for r in records) == sorted(files.items())
        assert {r["status"] for r in records} == {"processed"}  # each once, none lost
        counts = lz.reconcile("weather")
        assert (counts["pending"], counts["missing"]) == (0, 0)
        archived = sorted(p.name for p in (lz.root / "archive" / "weather").rglob("*.csv"))
        assert archived == sorted(files)
        spark = build_session(settings, "tests")
        raw = Lake.of(spark, settings).read(tables.RAW_WEATHER)
        assert raw.count() == counts["rows_accepted"]  # the killed run's rows replaced
        docs = without_times(list(mongo.database(settings).weather_hourly.find({})))
        assert sorted(docs, key=lambda d: d["_id"]) == uninterrupted["weather_hourly"]
    finally:
        _drop(settings)


# ------------------------------------------------------------ services of a dedicated stack
@pytest.fixture(scope="module")
def dedicated(stack: Settings, tmp_path_factory) -> Iterator[Settings]:
    """A stack of its own (free ports, folders under tmp_path) whose services tests may kill."""
    settings = dedicated_stack(stack, tmp_path_factory.mktemp("faults_stack"), "tarmac_faults")
    settings = settings.model_copy(
        update={"replay": stack.replay.model_copy(update={"checkpoint_every": 100})}
    )
    control.up(settings)
    yield settings
    for svc in services(settings):
        svc.stop()


def _down(service, pid: int) -> None:
    """Wait until ``service`` (process ``pid``) is dead, reaped and its port closed."""
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # a child of this session's stack fixture
    while service.pid() is not None or _port_open(service.port):
        time.sleep(0.1)


def _kill(service) -> tuple[int, float]:
    """SIGKILL ``service``'s real process; the pid and when."""
    pid = service.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def _restart(service, pid: int) -> float:
    """Start ``service`` again with the same code once ``pid`` is gone; the restart time."""
    _down(service, pid)
    t0 = time.monotonic()
    assert service.start()
    return time.monotonic() - t0


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_broker_killed_while_replaying_loses_and_doubles_no_event(
    dedicated: Settings, tmp_path: Path
) -> None:
    """Kafka SIGKILLed while the replay produces (paced: ~30 s of wall time), restarted: the
    replay goes on by itself or resumes on rerun, and the stream consumes every acknowledged
    event exactly once (counted by event id in the raw log and in the served flights)."""
    settings = _fresh(dedicated, tmp_path, "kafka")
    env = _env(settings, tmp_path)
    log = tmp_path / "replay.log"
    cmd = [sys.executable, "-m", "pipelines", "replay", "flights", "--env", settings.env,
           "--start", START.isoformat(), "--end", END.isoformat(), "--speed", "1200"]  # fmt: skip
    position = settings.resolve(settings.paths.data) / "replay" / "position.json"
    proc = _spawn(cmd, env, log)
    try:
        deadline = time.monotonic() + 300
        while not position.exists():  # a first flush acknowledged
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        kafka = KafkaService(settings)
        pid, t_kill = _kill(kafka)
        restart = _restart(kafka, pid)
        reruns = 0
        while _finish(proc) != 0:  # a replay that gave up resumes from its saved position
            reruns += 1
            assert reruns <= 3, log.read_text()[-3000:]
            proc = _spawn(cmd, env, log)
    finally:
        _stop(proc)
    print(f"recovery kafka restart {restart:.1f} replay done {time.monotonic() - t_kill:.1f}"
          f" reruns {reruns}")  # fmt: skip

    lead = timedelta(minutes=settings.replay.board_lead_minutes)
    sent = replay.flight_events(START, END, lead)
    try:
        flights_stream.run(settings)
        spark = build_session(settings, "tests")
        raw = Lake.of(spark, settings).read(tables.FLIGHT_EVENTS).select("event_id")
        ids = {r.event_id for r in raw.distinct().collect()}
        assert ids == set(sent["event_id"])  # every acknowledged event, none invented
        assert raw.count() == len(ids)  # none twice
        served = [
            f for d in mongo.database(settings).flights_by_hour.find({}) for f in d["flights"]
        ]
        assert len(served) == sent["flight_key"].nunique()
    finally:
        _drop(settings)


def test_ferretdb_killed_mid_batch_fails_clearly_and_the_next_run_converges(
    dedicated: Settings, prepared: Settings, uninterrupted, tmp_path: Path
) -> None:
    """FerretDB SIGKILLed while a stream batch writes its documents (the write paused at
    ``sink.partial_write`` until the kill): the run fails naming MongoDB and its address, the
    ledger records why (written once FerretDB is back), and the next run (cron's next minute)
    converges to the documents of the uninterrupted run. The prepared window is copied onto
    the dedicated stack (its lake and documents; its events replayed into that Kafka)."""
    settings = _branch(prepared, dedicated, tmp_path / "run", "mdb")
    outputs = tmp_path / "outputs"
    env = {**_env(settings, tmp_path, "sink.partial_write:pause"),
           "TARMAC_OUTPUTS_DIR": str(outputs)}  # fmt: skip
    cmd = [sys.executable, "-m", "pipelines", "run", "flights_stream", "--env", settings.env,
           "-p", f"max_offsets_per_trigger={BATCH}"]  # fmt: skip
    log = tmp_path / "runner.log"
    ferret = FerretDBService(settings)
    proc = None
    try:
        proc = _spawn(cmd, env, log)
        reached = tmp_path / "sink.partial_write.reached"
        deadline = time.monotonic() + 600
        while not reached.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        pid, t_kill = _kill(ferret)
        (tmp_path / "sink.partial_write.release").write_text("")
        rc = _finish(proc)
        failed_after = time.monotonic() - t_kill
        text = log.read_text(errors="replace")
        assert rc != 0, text[-3000:]
        # which of the stream's writers meets the dead server first is a race: a Spark task of
        # the refresh ("stopped answering during the job") or the driver's next state write
        # ("does not answer"); either names MongoDB and its address
        uri = re.escape(settings.mongo.safe_uri)
        said = rf"MongoDB at {uri} (stopped answering|does not answer)"
        assert re.search(said, text), text[-3000:]

        restart = _restart(ferret, pid)
        # the next run in this process (the runner's next run after a failed one:
        # tests/integration/test_runner.py's test_mongo_down_fails_cleanly_then_recovers)
        seconds = _rerun(settings, "flights_stream")
        print(f"recovery ferretdb failed_after {failed_after:.1f} restart {restart:.1f} "
              f"next_run {seconds:.1f}")  # fmt: skip
        ledger = Ledger(settings, outputs / "logs")
        failed = [d for d in ledger.recent("flights_stream") if d["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["error"]["type"] == "ServiceUnavailableError"
        assert "MongoDB at" in failed[0]["error"]["message"]
        assert snapshot(mongo.database(settings), times=False) == uninterrupted
    finally:
        if proc is not None:
            _stop(proc)
        if ferret.pid() is None:
            ferret.start()
        _drop(settings)


# ------------------------------------------------------------- landing folder not usable
def test_missing_or_read_only_landing_folder_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LandingError, match=f"landing zone {blocker / 'data'} is missing and "
                       "cannot be created .*point paths.data at a writable"):  # fmt: skip
        LandingZone(blocker / "data")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.getuid() == 0:  # root ignores file modes: the filesystem says read-only instead

        def erofs(self: Path, data: bytes) -> int:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

        monkeypatch.setattr(Path, "write_bytes", erofs)
    try:
        with pytest.raises(LandingError, match=f"landing zone {read_only} is read-only"):
            LandingZone(read_only)
    finally:
        read_only.chmod(0o755)
