"""A real Spark standalone cluster on this machine, started from pyspark's own distribution.

pyspark ships ``bin/spark-class`` and all of Spark's jars, so nothing is downloaded and no
Docker is needed. :class:`StandaloneCluster` starts one master and N workers as background
JVMs (``org.apache.spark.deploy.master.Master --host 127.0.0.1 --port P --webui-port W`` and
``org.apache.spark.deploy.worker.Worker spark://127.0.0.1:P --cores 1 --memory 1g ...``),
each in its own session (process group) with a pid file and a log under
``<stack.home>/spark-cluster/`` (``outputs/stack/<env>/spark-cluster/``). Their environment
sets ``SPARK_HOME`` to the pyspark package, ``SPARK_LOCAL_IP=127.0.0.1``, ``TZ=UTC`` and
``PYSPARK_PYTHON`` to this interpreter; executors and their Python workers inherit it.

Ports are free ones (``stack/ports``: outside the ephemeral range) unless given, kept in
``cluster.json`` so that ``status()`` and ``down()`` of a later process find the cluster.
``up()`` is idempotent and returns the master URL once the master's JSON UI
(``http://127.0.0.1:W/json/``) reports N ALIVE workers; if that does not happen within
``stack.start_timeout_s`` it stops what it started and raises
:class:`~pipelines.core.exceptions.ServiceStartError` with the logs' tails.
``down()`` sends SIGTERM to each whole process group (a worker's executors and their Python
workers too), SIGKILL after a timeout. The master's REST server (fixed port 6066) is off.
For 2 cores: 1 core and 1g per worker (one 1g executor each), 512m per daemon JVM.

    cluster = StandaloneCluster(settings, workers=2)
    url = cluster.up()      # spark://127.0.0.1:<port>, for spark-submit --master
    cluster.status()        # one row per JVM, as `stack status` prints them
    cluster.down()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyspark
import structlog

from pipelines.core import files
from pipelines.core.config import Settings
from pipelines.core.exceptions import ServiceStartError
from pipelines.stack import ports
from pipelines.stack.services import Service, _reap, _tail

log = structlog.get_logger(__name__)

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    """The pyspark package folder: a complete Spark distribution (``bin/``, ``jars/``)."""
    return Path(pyspark.__file__).resolve().parent


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def _group(pgid: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid``."""
    procs = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                procs.append(proc)
    return procs


@dataclass
class _Daemon(Service):
    """One JVM of the cluster, launched by ``spark-class`` in its own process group."""

    name: str = "spark-master"
    ui_port: int = 0
    args: list[str] = field(default_factory=list)  # after the main class; the master's = []
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""  # the master's spark:// URL; "" for a worker
    embedded = True  # type: ignore[assignment]

    @property
    def home(self) -> Path:
        return self.settings.resolve(self.settings.stack.home) / "spark-cluster"

    @property
    def port(self) -> int:
        return self.ui_port

    @property
    def address(self) -> str:
        return self.url or f"http://127.0.0.1:{self.ui_port}"

    def prepare(self) -> None:
        (self.home / "work").mkdir(parents=True, exist_ok=True)
        # --properties-file also puts the home in the command line, which Service.pid() checks
        (self.home / "spark-defaults.conf").write_text("spark.master.rest.enabled false\n")

    def command(self) -> list[str]:
        # `env` and spark-class both exec: the pid of the Popen is the JVM's
        assignments = [f"{key}={value}" for key, value in self.env.items()]
        spark_class = str(spark_home() / "bin" / "spark-class")
        main = MASTER if self.url else WORKER
        common = ["--host", "127.0.0.1", "--webui-port", str(self.ui_port)]
        common += ["--properties-file", str(self.home / "spark-defaults.conf")]
        return ["env", *assignments, spark_class, main, *self.args, *common]

    def answers(self) -> bool:
        doc = _get_json(f"http://127.0.0.1:{self.ui_port}/json/")
        return doc is not None and (not self.url or doc.get("status") == "ALIVE")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM to the whole process group, SIGKILL to what is left after ``timeout``."""
        pid = self.pid()
        if pid is None:
            return False
        procs = _group(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout)
        if alive:
            log.warning("cluster.kill", daemon=self.name, pids=[p.pid for p in alive])
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            psutil.wait_procs(alive, 10)
        _reap(pid)
        self.pidfile.unlink(missing_ok=True)
        log.info("cluster.stopped", daemon=self.name, pid=pid)
        return True


@dataclass
class StandaloneCluster:
    """One master and ``workers`` workers of ``cores`` cores and ``memory`` each, on 127.0.0.1.

    ``port`` / ``webui_port`` of 0 mean free ports; a running cluster keeps its own ports.
    """

    settings: Settings
    workers: int = 2
    port: int = 0
    webui_port: int = 0
    cores: int = 1
    memory: str = "1g"
    daemon_memory: str = "512m"

    @property
    def home(self) -> Path:
        return _Daemon(self.settings).home

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def master_url(self) -> str | None:
        """``spark://127.0.0.1:<port>`` of the last cluster started here, or None."""
        return f"spark://127.0.0.1:{state['port']}" if (state := self._state()) else None

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _daemons(self, state: dict[str, Any]) -> list[_Daemon]:
        env = {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(self.home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": self.daemon_memory,
            "PYSPARK_PYTHON": sys.executable,
            "TZ": "UTC",
        }
        url = f"spark://127.0.0.1:{state['port']}"
        master = ["--port", str(state["port"])]
        daemons = [_Daemon(self.settings, "spark-master", state["webui_port"], master, env, url)]
        for i, ui_port in enumerate(state["workers"], start=1):
            args = [url, "--cores", str(self.cores), "--memory", self.memory, "--work-dir"]
            args.append(str(self.home / "work" / f"worker-{i}"))
            daemons.append(_Daemon(self.settings, f"spark-worker-{i}", ui_port, args, env))
        return daemons

    def alive_workers(self) -> int:
        """ALIVE workers the master reports (0 when it does not answer)."""
        doc = _get_json(f"http://127.0.0.1:{self._state().get('webui_port', 0)}/json/")
        return int(doc.get("aliveworkers", 0)) if doc else 0

    def up(self) -> str:
        """Start what is not running yet, wait for ``workers`` ALIVE workers, return the URL.
        One ``up`` at a time per cluster home (``flock`` on ``<home>/.up.lock``): two at once
        (two commands, parallel test workers) start each daemon once; the second waits, then
        finds them running."""
        self.home.mkdir(parents=True, exist_ok=True)
        with files.exclusive(self.home / ".up.lock"):
            return self._up()

    def _up(self) -> str:
        state = self._state()
        if not state or self._daemons(state)[0].pid() is None:
            self.down()  # workers left behind by a master that is gone
            port, ui = ports.free_ports(2)
            state = {"port": self.port or port, "webui_port": self.webui_port or ui}
            state["workers"] = []
        if len(state["workers"]) < self.workers:
            state["workers"] += ports.free_ports(self.workers - len(state["workers"]))
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state))
        daemons = self._daemons(state)[: 1 + self.workers]
        url = daemons[0].address
        new = [d for d in daemons if d.pid() is None]
        try:
            for daemon in daemons:
                daemon.start()
            timeout, deadline = self.settings.stack.start_timeout_s, time.monotonic()
            while (alive := self.alive_workers()) < self.workers:
                if time.monotonic() > deadline + timeout:
                    tails = "\n".join(f"--- {d.log}:\n{_tail(d.log, 15)}" for d in daemons)
                    raise ServiceStartError(
                        f"spark cluster: {alive} of {self.workers} workers ALIVE at {url} after "
                        f"{timeout:.0f}s; the logs end with:\n{tails}"
                    )
                time.sleep(0.5)
        except BaseException:
            for daemon in reversed(new):  # also one that is up but did not answer in time
                daemon.stop()
            raise
        log.info("cluster.up", master=url, workers=self.workers, home=str(self.home))
        return url

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop every daemon this cluster's home started (workers first); names stopped."""
        daemons = self._daemons(state) if (state := self._state()) else []
        stopped = [d.name for d in reversed(daemons) if d.stop(timeout)]
        self.state_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[dict[str, object]]:
        """One row per daemon (service, state, answers, address, pid, log)."""
        return [d.status() for d in self._daemons(state)] if (state := self._state()) else []
