"""Notebook-native jobs on the real stack (issue 19, part 3): a notebook of tests/notebooks/
(``$TARMAC_JOBS_NOTEBOOKS``) that declares itself a job in its metadata is listed by ``jobs``,
run by ``run`` (papermill, ledger, lock) and promoted by ``submit`` (nbconvert's script under
spark-submit) to the standalone cluster with the same result; a hand run in a kernel of its own
and the runner take the same lock. Each test has its own outputs folder, lake and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.core.exceptions import JobLockedError
from pipelines.orchestration.ledger import COLLECTION
from pipelines.orchestration.locks import read_holder
from tests.cluster_fixture import spark_cluster  # noqa: F401
from tests.conftest import write_parameters

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N, BUCKETS = 1000, 7


class Box:
    """Isolated settings (own lake, database) and the environment of the CLI's subprocesses."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings, self.outputs = settings, folder / "outputs"
        write_parameters(settings, folder / "parameters")
        self.env = {
            **os.environ,
            "TARMAC_PARAMETERS_DIR": str(folder / "parameters"),
            "TARMAC_OUTPUTS_DIR": str(self.outputs),
            "TARMAC_JOBS_NOTEBOOKS": "tests/notebooks",
            "TARMAC_LOG_FORMAT": "kv",
        }

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipelines", *args],
            capture_output=True, text=True, cwd=REPO, env=self.env, timeout=timeout,
        )  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "pipelines", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=self.env,
        )  # fmt: skip

    def ledger(self, run_id: str) -> dict:
        return mongo.database(self.settings)[COLLECTION].find_one({"_id": run_id})


@pytest.fixture
def box(stack: Settings, tmp_path: Path, unique: str) -> Iterator[Box]:
    settings = stack.isolated(unique, tmp_path, database=f"tarmac_nbjobs_{unique}")
    try:
        yield Box(settings, tmp_path)
    finally:
        mongo.database(settings).client.drop_database(settings.mongo.database)


def _expected(n: int, buckets: int) -> list[dict[str, int]]:
    """The sums the notebook computes, computed here without Spark."""
    return [{"bucket": b, "total": sum(range(b, n, buckets)), "rows": len(range(b, n, buckets))}
            for b in range(buckets)]  # fmt: skip


def test_a_notebook_job_is_listed_run_and_submitted_to_the_cluster_with_the_same_result(
    box: Box,
    spark_cluster: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    env = box.settings.env
    listed = box.cli("jobs", timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {ln.split()[0]: ln.split() for ln in listed.stdout.splitlines()[1:]}
    assert rows["nb_job_sum"][1:3] == ["tests/notebooks/nb_job_sum.ipynb", "notebook"]
    assert "smoke" in rows and "weather_hourly" in rows  # the one registry

    # run: papermill, as cron runs it (the ledger, the lock, the output notebook)
    ran = box.cli("run", "nb_job_sum", "--env", env, "-p", f"n={N}", "-p",
                  f"out={tmp_path / 'run'}", "--trigger", "cron", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert (summary["job"], summary["status"], summary["rows_in"], summary["rows_out"]) == (
        "nb_job_sum", "success", N, BUCKETS,
    )  # fmt: skip
    doc = box.ledger(summary["run_id"])
    assert doc["params"] == {"env": env, "n": N, "buckets": BUCKETS, "out": str(tmp_path / "run")}
    assert doc["trigger"] == "cron" and doc["timeout_s"] == 300 and doc["max_attempts"] == 1
    assert doc["metrics"] == {"master": box.settings.spark.master}
    output = Path(doc["notebook"])
    assert output.is_file() and f"n = {N}" in output.read_text()  # papermill's injected cell
    assert "held by the runner (pid" in output.read_text()  # job_lock found the runner's lock
    assert read_holder(box.outputs / "locks" / f"{env}-nb_job_sum.lock") == {}  # released

    # submit: nbconvert's script of the notebook under spark-submit, on the standalone cluster
    sub = box.cli("submit", "nb_job_sum", "--env", env, "--master", spark_cluster, "-p",
                  f"n={N}", "-p", f"out={tmp_path / 'submit'}")  # fmt: skip
    assert sub.returncode == 0, sub.stderr[-3000:]
    assert json.loads(sub.stdout.splitlines()[-1]) == {
        "rows_in": N, "rows_out": BUCKETS, "rows_rejected": None, "master": spark_cluster,
    }  # fmt: skip
    (script,) = (box.outputs / "submit" / "nb_job_sum").glob("*.py")
    assert f"\nn = {N}\n" in script.read_text()  # the same parameters, injected the same way

    # the same result: the Delta table's rows read back, whatever the master
    run_result = json.loads((tmp_path / "run" / "result.json").read_text())
    submit_result = json.loads((tmp_path / "submit" / "result.json").read_text())
    assert run_result["master"] == box.settings.spark.master
    assert submit_result["master"] == spark_cluster
    assert run_result["rows"] == submit_result["rows"] == _expected(N, BUCKETS)


def _kernel(box: Box):
    """A Jupyter kernel of its own (what JupyterLab starts for a notebook), on ``box``'s
    parameters and outputs folder."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(REPO), env=box.env)
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    return km, client


def _execute(client, code: str) -> tuple[str, dict]:
    """Run ``code`` in the kernel: (its stdout, the reply's content)."""
    out: list[str] = []

    def keep(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    reply = client.execute_interactive(code, timeout=120, output_hook=keep)
    return "".join(out), reply["content"]


def test_a_hand_run_in_a_kernel_and_the_runner_take_the_same_lock(box: Box) -> None:
    env = box.settings.env
    lock_file = box.outputs / "locks" / f"{env}-nb_job_hold.lock"
    first_cells = f'env = "{env}"\nfrom pipelines.orchestration.notebook import job_lock\n'
    km, client = _kernel(box)
    try:
        kernel_pid = int(_execute(client, "import os; print(os.getpid())")[0])
        # a hand run holds the lock: cron's run exits at once, its ledger line says by whom
        text, reply = _execute(client, first_cells + 'lock = job_lock("nb_job_hold", env)')
        assert reply["status"] == "ok", text
        assert text.strip() == (f"lock {env}-nb_job_hold.lock: held by this process until "
                                "lock.release() or the kernel stops")  # fmt: skip
        refused = box.cli("run", "nb_job_hold", "--env", env, "--trigger", "cron", timeout=120)
        assert refused.returncode == JobLockedError.exit_code == 8, refused.stderr
        assert f"is already running: pid {kernel_pid}" in refused.stderr
        assert "by a hand run (notebook kernel)" in refused.stderr
        # released by the notebook's last cell: the next run goes
        assert _execute(client, "lock.release()")[1]["status"] == "ok"
        assert read_holder(lock_file) == {}

        # the runner holds it (a run of 20 s): the hand run is refused, told which run holds it
        running = box.popen("run", "nb_job_hold", "--env", env, "-p", "seconds=20", "--json")
        try:
            deadline = time.monotonic() + 60
            while not read_holder(lock_file).get("run_id") and time.monotonic() < deadline:
                time.sleep(0.1)
            holder = read_holder(lock_file)
            text, reply = _execute(client, 'lock = job_lock("nb_job_hold", env)')
            assert reply["status"] == "error" and reply["ename"] == "JobLockedError", text
            assert f"is already running: pid {running.pid}" in text
            assert f"by manual (run {holder['run_id']}" in text
            assert "This notebook was not run: wait for that run to end" in text
            stdout, stderr = running.communicate(timeout=300)
        finally:
            if running.poll() is None:
                running.kill()
        assert running.returncode == 0, stderr[-3000:]
        doc = box.ledger(json.loads(stdout.splitlines()[-1])["run_id"])
        # under the runner, the notebook's job_lock found the runner's own lock
        assert doc["status"] == "success" and doc["metrics"]["owner"] == (
            f"the runner (pid {running.pid}, run {doc['run_id']})"
        )
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    runs = list(mongo.database(box.settings)[COLLECTION].find({"job": "nb_job_hold"}))
    assert sorted(d["status"] for d in runs) == ["skipped_locked", "success"]
