"""Every command a user is told about, run as a subprocess the way the user types it.

What is documented is collected, not listed here: the lines of README.md's shell blocks, the
targets of ``make help`` and the commands of ``tarmac --help``
(``tests/commands.py``). Each is either run by a test of this module (``@covers``: the exit code
and the line the user reads are asserted) or named in ``NOT_RUN`` with the reason;
``test_every_documented_command_is_run_here_or_says_why_not`` fails on anything else, so a
command documented tomorrow cannot stay untested.

README lines run byte for byte (``bash -c``) in a sandbox whose parameters map ``local`` and
``ci`` to isolated settings on the session's running ``ci`` stack (own topics, folders,
database); a line is changed only where it cannot run as written, each change with its reason.
One window of a few hours is loaded once for the module, by ``make backfill FROM= TO=``.
``make stack-up/status/down`` run on a dedicated stack (free ports), the crontab lines on a
scratch crontab. Nothing here asserts a duration. Measured on 2 cores shared with other
sessions' test runs (load 6 to 14): 652 s, of which the demo's round 270 s (its stream reads
what the demo's own replay sent), the window's load 199 s, the smoke 62 s, the dedicated stack
25 s, every other case under 22 s; at load ~3, ``make backfill`` of a 4 h window took 80 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from pipelines.clients import kafka_io, mongo
from pipelines.core.config import Settings
from pipelines.jobs import registry
from pipelines.jobs.registry import PIPELINE
from pipelines.orchestration import cron
from pipelines.stack import control, lab, ports, voila
from pipelines.stack.services import stop_group
from tests.commands import REPO, Sandbox, documented, ok, scratch_crontab
from tests.conftest import dedicated_stack

pytestmark = pytest.mark.integration

FROM, TO = "2013-01-04T21:00:00Z", "2013-01-05T01:00:00Z"  # 4 h: ~670 events, 5 Jan's snapshot
COVERED: dict[str, str] = {}  # documented command -> the test that runs it
NOT_RUN = {
    "make test": "the suite itself: this module runs inside it",
    "make test-unit": "tests/unit is part of `make test`, this suite; running it again from "
    "inside would double that time",
    "make system-deps": "installs OS packages with apt-get as root; `make test` runs it itself "
    "(target test-deps) when Chromium or npm is missing",
    "make clean": "stops both stacks (the session's `ci` stack included) and deletes outputs/",
    "make slides": "builds the deck (~3 min, the module's whole budget): "
    "tests/e2e/test_presentation.py builds it on the ci stack with build.build, what it runs",
    "tarmac slides": "as `make slides`, which runs it",
    "tarmac cluster": "starts a Spark master and two worker JVMs (~30 s): "
    "tests/cluster_fixture.py drives the same StandaloneCluster for test_cluster.py and "
    "test_processing.py",
    "cp .env.example .env": "prepares docker compose's passwords in the checkout; no Docker "
    "engine here (tests/unit/test_compose.py checks .env.example)",
    "tarmac service run flights_stream --env local": "the supervisor in the "
    "foreground, until stopped: what `service start` runs detached (run here) and docker "
    "compose's `stream` service runs",
    "tarmac rebuild --from 2013-01-01 --to 2013-01-31": "a rebuild needs a lake of "
    "two months to show its resume: tests/e2e/test_processing.py runs `python -m pipelines "
    "rebuild` on its loaded window (derived tables and documents deleted, the rebuild killed "
    "after its first month, resumed: every document back)",
    "tarmac rebuild": "as the line above",
    "docker compose up -d": "no Docker engine on the development machines; "
    "tests/unit/test_compose.py checks docker-compose.yml's services, ports, volumes, users",
}


def covers(*commands: str) -> Callable:
    """Declare the documented commands a test runs (and asserts the outcome of)."""

    def mark(test: Callable) -> Callable:
        for command in commands:
            assert command not in COVERED, f"{command!r} covered twice"
            COVERED[command] = test.__name__
        return test

    return mark


def adapted(line: str, old: str, new: str) -> str:
    """``line`` with ``old`` replaced (which must be there: the README changed otherwise)."""
    assert old in line, f"README's `{line}` no longer holds {old!r}: update this test"
    return line.replace(old, new)


def table(stdout: str) -> dict[str, list[str]]:
    """The rows of a table the CLI prints, by their first column."""
    return {ln.split()[0]: ln.split() for ln in stdout.splitlines()[1:] if ln.strip()}


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sandbox(stack: Settings, tmp_path_factory) -> Iterator[Sandbox]:
    """Isolated settings on the running stack, for the whole module; dropped at the end."""
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("commands")
    box = Sandbox.create(stack.isolated(tag, folder, database=f"tarmac_cmd_{tag}"), folder)
    try:
        yield box
    finally:
        mongo.database(box.settings).client.drop_database(box.settings.mongo.database)
        kafka_io.delete_topics(box.settings, [t.name for t in box.settings.kafka.topics.values()])


@pytest.fixture(scope="module")
def backfill(sandbox: Sandbox) -> subprocess.CompletedProcess:
    """``make backfill`` of the window, once for the module (the one loaded window)."""
    return sandbox.sh(f"make backfill FROM={FROM} TO={TO}", timeout=1200)


@pytest.fixture
def window(sandbox: Sandbox, backfill: subprocess.CompletedProcess) -> Sandbox:
    """The sandbox, once ``make backfill`` loaded the window there (else its output)."""
    ok(backfill)
    return sandbox


@pytest.fixture
def plain(settings: Settings, tmp_path: Path) -> Sandbox:
    """A sandbox for the lines that touch no service."""
    return Sandbox.create(settings.isolated("plain", tmp_path), tmp_path)


# ---------------------------------------------------------------------------------- the index
@covers("make help")
def test_every_documented_command_is_run_here_or_says_why_not(plain: Sandbox) -> None:
    make_help = ok(plain.sh("make help"))
    assert re.search(r"^  make backfill +\S", make_help, flags=re.MULTILINE), make_help
    named = documented(make_help, ok(plain.sh("tarmac --help")))
    problems = [
        f"- `{c}` ({where}) is run by no test. Add a test to tests/e2e/test_commands.py that runs "
        f"it as the user types it (Sandbox.sh) and asserts its exit code and the line the user "
        f"reads, marked @covers({c!r}); or, when it cannot run here, add {c!r} to NOT_RUN with "
        "the reason"
        for c, where in named.items()
        if c not in COVERED and c not in NOT_RUN
    ]
    problems += [
        f"- `{c}` is both in NOT_RUN and run by {COVERED[c]}" for c in NOT_RUN if c in COVERED
    ]
    problems += [
        f"- `{c}` is no longer documented (README.md, make help, --help): remove it from "
        f"{'NOT_RUN' if c in NOT_RUN else f'@covers of {COVERED[c]}'}"
        for c in sorted({*COVERED, *NOT_RUN} - set(named))
    ]
    assert not problems, "\n".join(problems)


@covers("make install", "make lint")
def test_make_install_is_up_to_date_and_lint_is_clean(plain: Sandbox) -> None:
    # `make -q`: only asks; never reinstalls the virtualenv from a test
    assert plain.sh("make -q install").returncode == 0, "pyproject.toml changed: run make install"
    assert "Nothing to be done for 'install'" in ok(plain.sh("make install"))
    assert "All checks passed!" in ok(plain.sh("make lint", timeout=120))


@covers("tarmac jobs")
def test_jobs_lists_the_registry(plain: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ok(plain.sh("tarmac jobs"))
    assert out.split()[:4] == ["JOB", "NOTEBOOK", "CODE", "IN"]
    rows = table(out)
    monkeypatch.delenv("TARMAC_JOBS_NOTEBOOKS", raising=False)  # as the sandbox: notebooks/ only
    assert set(rows) == set(registry.jobs())  # the module jobs and the notebook-native ones
    for name, spec in registry.jobs().items():
        assert rows[name][1:3] == [str(spec.notebook), spec.code], name
    assert rows["weather_hourly"][1:3] == ["notebooks/20_weather_hourly.ipynb",
                                           "pipelines.jobs.weather_hourly"]  # fmt: skip


# ------------------------------------------------------------------------ the loaded window
@covers("make backfill", "tarmac pipeline")
def test_make_backfill_replays_the_window_and_prints_one_line_per_stage(backfill) -> None:
    out = ok(backfill)
    assert f"python -m pipelines pipeline --env local --start {FROM} --end {TO}" in out
    replay = re.search(
        r"^replay +sent ([\d,]+) flight events, 4 weather files, 1 reference snapshot +[\d.]+ s$",
        out, flags=re.MULTILINE,
    )  # fmt: skip
    assert replay, out
    stage = r"^(\w+) +success +in ([\d,]+) · out ([\d,]+) · rejected ([\d,]+) +[\d.]+ s$"
    stages = re.findall(stage, out, flags=re.MULTILINE)
    assert [s[0] for s in stages] == list(PIPELINE), out
    counts = {job: [int(n.replace(",", "")) for n in ns] for job, *ns in stages}
    assert counts["weather_hourly"] == [12, 12, 0]  # 4 files x 3 airports
    assert counts["flights_stream"][0] == int(replay[1].replace(",", ""))  # every event read
    assert counts["reference_daily"][1] > 0


@covers("make stack-up ENV=ci")
def test_make_stack_up_on_a_running_stack_changes_nothing(window: Sandbox) -> None:
    rows = table(ok(window.sh("make stack-up ENV=ci")).split(" stack up --env ci\n", 1)[1])
    assert rows["kafka"][1:3] in (["running", "True"], ["external", "True"])
    assert rows["ferretdb"][3] == window.settings.mongo.uri


@covers("make smoke", "tarmac smoke")
def test_make_smoke_sends_a_thousand_messages_through_spark_once(window: Sandbox) -> None:
    result = json.loads(ok(window.sh("make smoke")).splitlines()[-1])
    assert (result["rows_read"], result["documents"]) == (1000, 1000)


@covers("tarmac run weather_hourly --env local -p date=2013-01-02",
        "tarmac run")  # fmt: skip
def test_run_prints_one_line_per_run(window: Sandbox) -> None:
    out = ok(window.sh("tarmac run weather_hourly --env local -p date=2013-01-02"))
    # no file of 2 Jan is pending (the window's were processed by the backfill): it finds none
    line = r"^weather_hourly \(local\) +success +in 0 · out 0 · rejected 0 +[\d.]+ s +(\S+\.html)$"
    match = re.search(line, out, flags=re.MULTILINE)
    assert match and Path(match[1]).is_file() and match[1].startswith(str(window.outputs)), out


@covers("tarmac backfill reference_daily --from 2013-01-01 --to 2013-01-31",
        "tarmac backfill", "tarmac runs")  # fmt: skip
def test_backfill_runs_each_date_once_and_runs_lists_them(window: Sandbox) -> None:
    readme = "tarmac backfill reference_daily --from 2013-01-01 --to 2013-01-31"
    line = adapted(readme, "--to 2013-01-31", "--to 2013-01-01")  # one run of ~10 s, not 31
    first = ok(window.sh(line))
    runs = re.findall(r"^(2013-01-01)  success   (\S+)$", first, flags=re.MULTILINE)
    assert len(runs) == 1, first
    assert first.splitlines()[-1] == "backfill of reference_daily: 1 run, 0 already done"
    again = ok(window.sh(line))
    assert again.splitlines()[-1] == "backfill of reference_daily: 0 run, 1 already done"

    ledger = table(ok(window.sh("tarmac runs")))
    for date, run_id in runs:
        assert ledger[run_id][1:3] == ["reference_daily", "success"] and date in ledger[run_id]


@covers("tarmac job", "tarmac submit")
def test_job_and_submit_print_the_same_result(window: Sandbox) -> None:
    # weather_hourly of a date with nothing pending: the commands' whole path (parameters,
    # registry, spark-submit with the session's jars) without a stream's minute of Spark;
    # tests/integration/test_smoke.py submits a job that runs Spark
    results = []
    for command in ("job", "submit"):
        out = ok(window.sh(f"tarmac {command} weather_hourly -p date=2013-01-02"))
        result = json.loads(out.splitlines()[-1])
        results.append({k: v for k, v in result.items() if k != "seconds"})
    assert results[0] == results[1] == {"files": 0, "duplicates": 0, "quarantined": 0, "busy": 0,
                                        "rows_in": 0, "accepted": 0, "rejected": 0,
                                        "unreconciled": 0}  # fmt: skip


@covers("tarmac schedule")
def test_schedule_runs_the_crontab_lines_due_this_minute(window: Sandbox, tmp_path: Path) -> None:
    # the README's line runs until Ctrl-C, the lines of cron/tarmac.crontab at their minutes:
    # one tick (--once) of the crontab's weather line, made due every minute, logging here
    weather = next(
        ln for ln in cron.TEMPLATE.read_text().splitlines() if "run weather_hourly" in ln
    )
    command = adapted(weather.split(None, 5)[5], ">> outputs/logs/", f">> {tmp_path}/")
    (tmp_path / "crontab").write_text(f"* * * * * {command}\n")
    ok(window.sh(f"tarmac schedule --once --crontab {tmp_path / 'crontab'}"))
    log = (tmp_path / "cron-weather_hourly.log").read_text()
    assert re.search(r"^weather_hourly \(local\) +success +in [\d,]+ ", log, flags=re.MULTILINE), (
        log
    )


# ------------------------------------------------------------------ long-running commands
@covers("make dashboard", "tarmac dashboard")
def test_make_dashboard_answers_on_localhost(window: Sandbox, tmp_path: Path) -> None:
    port, log = ports.free_port(), tmp_path / "dashboard.log"
    proc = window.spawn("make dashboard", log, DASHBOARD_PORT=str(port))
    try:
        url = voila.wait_ready(proc, port, log)
        with urllib.request.urlopen(url, timeout=120) as page:
            assert "<title>Tarmac · NY airports control room</title>" in page.read().decode()
        assert proc.poll() is None, log.read_text()  # it serves until stopped
    finally:
        stop_group(proc)  # SIGTERM: the command's Ctrl-C path stops Voila and its kernels
    deadline = time.monotonic() + 30
    while _answers(port):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


@covers("make lab", "tarmac lab")
def test_make_lab_serves_jupyterlab_whose_kernels_import_this_checkout(
    plain: Sandbox, tmp_path: Path
) -> None:
    """JupyterLab answers its API with the printed token only; a kernel it starts (as a new
    notebook does) imports this checkout's ``pipelines`` with ``TARMAC_ENV`` set, in
    ``notebooks/``; a SIGTERM stops the server and its kernel."""
    port, log, kernel = ports.free_port(), tmp_path / "lab.log", None
    proc = plain.spawn("make lab", log, LAB_PORT=str(port),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))  # fmt: skip
    try:
        line = re.compile(r"^JupyterLab \(local\): http://127\.0\.0\.1:(\d+)/lab\?token=(\S+)"
                          r"   Ctrl-C to stop$", re.MULTILINE)  # fmt: skip
        deadline = time.monotonic() + 120
        while not (found := line.search(log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        assert int(found[1]) == port
        token = found[2]
        assert lab.status(port, token)["kernels"] == 0
        with pytest.raises(urllib.error.HTTPError) as denied:  # no token, no API
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5)
        assert denied.value.code == 403
        code = "import os, pipelines as p; print(p.__file__, os.environ['TARMAC_ENV'], os.getcwd())"
        module, env, cwd = lab.run_in_kernel(port, token, code).split()
        assert (module, env, cwd) == (str(REPO / "pipelines" / "__init__.py"), "local",
                                      str(REPO / "notebooks"))  # fmt: skip
        assert lab.status(port, token)["kernels"] == 0  # run_in_kernel shut it down
        kernel = int(lab.run_in_kernel(port, token, "import os; print(os.getpid())", keep=True))
        assert lab.status(port, token)["kernels"] == 1 and _alive(kernel)
        assert proc.poll() is None, log.read_text()  # it serves until stopped
    finally:
        stop_group(proc)  # SIGTERM: the command's Ctrl-C path stops JupyterLab and its kernels
    deadline = time.monotonic() + 30
    while _answers_api(port) or (kernel is not None and _alive(kernel)):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


@covers(
    "tarmac service start flights_stream --env local",
    "make stream-start",
    "tarmac service status flights_stream --env local",
    "make stream-status",
    "tarmac service ensure flights_stream --env local",
    "tarmac service stop flights_stream --env local",
    "make stream-stop",
    "tarmac service",
)
def test_the_stream_service_starts_once_reports_and_stops(window: Sandbox) -> None:
    """The README's service lines and the make targets, in the order an operator types them."""
    cmd = "tarmac service {} flights_stream --env local"
    started = ok(window.sh(cmd.format("start"), timeout=300))
    assert re.search(r"^flights_stream \(env local\): running, pid \d+, .*\(started\)$", started,
                     re.MULTILINE), started  # fmt: skip
    again = ok(window.sh("make stream-start", timeout=300))
    assert "(already running: nothing done)" in again, again
    status = ok(window.sh(cmd.format("status")))
    assert "flights_stream (env local): running, pid" in status, status
    assert "running, pid" in ok(window.sh("make stream-status"))
    watchdog = ok(window.sh(cmd.format("ensure")))
    assert "running, pid" in watchdog and "(started)" not in watchdog, watchdog
    stopped = ok(window.sh(cmd.format("stop"), timeout=240))
    assert re.search(r"^flights_stream \(env local\): stopped in [\d.]+ s$", stopped, re.M), stopped
    down = window.sh("make stream-status")
    assert down.returncode != 0 and "flights_stream (env local): stopped" in down.stdout
    assert "was not running" in ok(window.sh("make stream-stop"))


@covers("make demo", "tarmac demo")
def test_make_demo_serves_the_dashboard_and_runs_each_job(window: Sandbox, tmp_path: Path) -> None:
    port, log = ports.free_port(), tmp_path / "demo.log"
    # at 240x the first weather file lands within a minute (at the default 24x, ten: the test
    # then waited about 10 min for one run, with the stream service busy all along)
    proc = window.spawn("make demo", log, DASHBOARD_PORT=str(port), DEMO_CYCLES="1",
                        DEMO_SPEED="240")  # fmt: skip
    try:
        voila.wait_ready(proc, port, log, timeout_s=180)
        assert proc.wait(timeout=1200) == 0, log.read_text()[-4000:]
    finally:
        stop_group(proc)
    out = log.read_text()
    assert f"python -m pipelines demo --env local --port {port} --cycles 1 --speed 240" in out
    assert f"Dashboard: http://127.0.0.1:{port}/   (replay clock: 240x)" in out
    # the stream long-lived (a service), the file jobs when their files land: one weather run
    assert re.search(r"^flights_stream +service running \(pid \d+\)", out, re.MULTILINE), out
    ran = re.findall(r"^(\w+) \(local\) +success +in [\d,]+ · out ", out, flags=re.MULTILINE)
    assert "weather_hourly" in ran and set(ran) <= set(PIPELINE), out
    assert not _answers(port)  # the demo stopped its Voila
    gone = window.sh("tarmac service status flights_stream --env local")
    assert gone.returncode == 1 and ": stopped" in gone.stdout  # and its stream service


@covers("tarmac replay")  # after the demo: its stream has nothing new to read
def test_replay_sends_the_next_hour_to_kafka(window: Sandbox) -> None:
    out = ok(window.sh(f"tarmac replay flights --start {TO} "
                       "--end 2013-01-05T02:00:00Z --catch-up --no-progress"))  # fmt: skip
    result = json.loads(out.splitlines()[-1])
    assert result["sent"]["flights"] > 0 and result["interrupted"] is False


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/voila.js", timeout=2)
        return True
    except OSError:
        return False


def _answers_api(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
        return True
    except urllib.error.HTTPError:
        return True  # 403 without a token: it answers
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie left for its dead parent to reap does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------ a dedicated stack, a scratch crontab
EXTERNAL = (  # README: "External Kafka / MongoDB"
    "KAFKA_BOOTSTRAP_SERVERS=broker:9092 MONGO_URI=mongodb://db:27017/ tarmac stack up"
)


@covers("make stack-up", "make stack-status", "make stack-down", "tarmac stack",
        EXTERNAL)  # fmt: skip
def test_make_stack_up_status_down_on_a_dedicated_stack(stack: Settings, tmp_path: Path) -> None:
    own = Sandbox.create(dedicated_stack(stack, tmp_path, "tarmac_cmd_stack"), tmp_path / "box",
                         owns_stack=True)  # fmt: skip
    kafka, uri = own.settings.kafka.bootstrap_servers, own.settings.mongo.uri
    try:
        up = table(ok(own.sh("make stack-up", timeout=300)).split("stack up --env local\n")[1])
        assert up["kafka"][1:4] == ["running", "True", kafka] and up["ferretdb"][3] == uri
        status = table(ok(own.sh("make stack-status")).split("stack status --env local\n")[1])
        assert {s: row[1:3] for s, row in status.items()} == {
            "kafka": ["running", "True"],
            "ferretdb": ["running", "True"],
            "spark": ["ready", "True"],
        }

        # external services named in the environment (there: hosts of docker compose): these
        line = adapted(adapted(EXTERNAL, "broker:9092", kafka), "mongodb://db:27017/", uri)
        external = table(ok(own.sh(line)))
        assert external["kafka"][1:3] == external["ferretdb"][1:3] == ["external", "True"]

        down = table(ok(own.sh("make stack-down")).split("stack down --env local\n")[1])
        assert down["kafka"][1:3] == down["ferretdb"][1:3] == ["stopped", "False"]
        after = own.sh("make stack-status")
        assert after.returncode != 0 and "stopped" in after.stdout, after
    finally:
        control.down(own.settings)


@covers("make cron-install", "make cron-remove", "tarmac cron")
def test_cron_install_show_remove_on_a_scratch_crontab(plain: Sandbox, tmp_path: Path) -> None:
    other = "MAILTO=ops@example.org\n30 2 * * * /usr/local/bin/backup\n"
    where = f"crontab: tarmac block for {REPO}"
    with scratch_crontab(tmp_path / "spool") as scratch:
        ok(plain.sh(scratch(f"printf '{other}' | crontab -")))
        assert ok(plain.sh(scratch("make cron-install"))).splitlines()[-1] == f"{where} installed"
        again = ok(plain.sh(scratch("make cron-install"))).splitlines()[-1]
        assert again == f"{where} already up to date"
        installed = ok(plain.sh(scratch("crontab -l")))
        block = ok(plain.sh("tarmac cron show"))
        assert installed == other + block and "tarmac service ensure flights_stream" in block
        assert ok(plain.sh(scratch("make cron-remove"))).splitlines()[-1] == f"{where} removed"
        assert ok(plain.sh(scratch("crontab -l"))) == other
