"""Background processes of the embedded stack: start with a pid file, wait until they answer
their real protocol, report, and stop only what we started.

A service is "ours" when its pid file names a live process whose command line contains the
service's own folder; anything else on the port is reported, never killed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import structlog

from pipelines.core.config import Settings
from pipelines.core.exceptions import ServiceStartError
from pipelines.stack import provision

log = structlog.get_logger(__name__)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log yet)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it started: SIGTERM
    to its process group, SIGKILL after ``grace_s`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _reap(pid: int) -> None:
    """Collect a dead child of ours so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class Service:
    """One embedded service; subclasses say how to prepare, launch and probe it."""

    settings: Settings
    name: str = field(init=False, default="service")

    @property
    def home(self) -> Path:
        return self.settings.resolve(self.settings.stack.home) / self.name

    @property
    def pidfile(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.home / "logs" / f"{self.name}.out"

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def embedded(self) -> bool:
        raise NotImplementedError

    @property
    def address(self) -> str:
        raise NotImplementedError

    def prepare(self) -> None:
        """Fetch/build what the service needs and write its configuration (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        """True when the service answers a real protocol request."""
        raise NotImplementedError

    # process bookkeeping ------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of our live process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            line = " ".join(proc.cmdline())  # its home, as given or through symlinks resolved
            if proc.status() != psutil.STATUS_ZOMBIE and (
                str(self.home) in line or str(self.home.resolve()) in line
            ):
                return pid
        except psutil.Error:
            pass
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self) -> bool:
        """Start unless already running; wait until it answers. True if it was started now."""
        if self.pid() is not None:
            self.wait_ready()
            log.info("service.already_running", service=self.name, pid=self.pid())
            return False
        if _port_open(self.port):
            raise ServiceStartError(
                f"{self.name}: port {self.port} is already used by a process Tarmac did not "
                f"start. Stop it, choose another port in the parameters, or set "
                f"embedded: false to use it as an external service."
            )
        self.prepare()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n=== tarmac start {time.strftime('%F %T')} ===\n".encode())
            out.flush()
            proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))
        log.info("service.starting", service=self.name, pid=proc.pid, log=str(self.log))
        self.wait_ready(proc)
        return True

    def wait_ready(self, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceStartError(
                    f"{self.name} exited with code {proc.returncode} while starting; "
                    f"see {self.log}:\n{_tail(self.log)}"
                )
            if self.answers():
                log.info("service.ready", service=self.name, address=self.address)
                return
            time.sleep(0.5)
        raise ServiceStartError(
            f"{self.name} did not answer on {self.address} within "
            f"{self.settings.stack.start_timeout_s:.0f}s; see {self.log}:\n{_tail(self.log)}"
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our process (TERM, then KILL after ``timeout``). True if one was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            log.warning("service.kill", service=self.name, pid=pid)
            proc.kill()
            proc.wait(10)
        self.pidfile.unlink(missing_ok=True)
        log.info("service.stopped", service=self.name, pid=pid)
        return True

    def status(self) -> dict[str, object]:
        pid = self.pid() if self.embedded else None
        if not self.embedded:
            state = "external"
        elif pid is None:
            state = "stopped"
        else:
            state = "running"
        return {
            "service": self.name,
            "state": state,
            "answers": self.answers(),
            "address": self.address,
            "pid": pid,
            "log": str(self.log) if self.embedded else None,
        }


def kafka_cluster_id() -> str:
    """A random KRaft cluster id as Kafka's ``Uuid.randomUuid`` makes it: 16 random bytes,
    URL-safe base64 without padding, drawn again when it starts with ``-`` (the storage tool
    would take it for an option: 1 id in 64 did, and the broker failed to format)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaService(Service):
    """Apache Kafka 4.x, single combined broker+controller in KRaft mode."""

    name = "kafka"

    @property
    def port(self) -> int:
        return self.settings.kafka.port

    @property
    def embedded(self) -> bool:
        return self.settings.kafka.embedded

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _libs(self) -> Path:
        return provision.kafka_home(self.settings) / "libs"

    def prepare(self) -> None:
        libs = self._libs()
        k = self.settings.kafka
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(
            "\n".join(
                [
                    "# written by tarmac; edit parameters/<env>.yaml instead",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{k.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{k.port},"
                    f"CONTROLLER://127.0.0.1:{k.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{k.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )
        (self.home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.file.type = RollingFile",
                    "appender.file.name = FILE",
                    f"appender.file.fileName = {self.home}/logs/server.log",
                    f"appender.file.filePattern = {self.home}/logs/server.log.%i",
                    "appender.file.layout.type = PatternLayout",
                    "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                    "appender.file.policies.type = Policies",
                    "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                    "appender.file.policies.size.size = 20MB",
                    "appender.file.strategy.type = DefaultRolloverStrategy",
                    "appender.file.strategy.max = 5",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.file.ref = FILE",
                    "logger.kafka.name = kafka",
                    "logger.kafka.level = INFO",
                    "logger.kafka.additivity = false",
                    "logger.kafka.appenderRef.file.ref = FILE",
                    "",
                ]
            )
        )
        if not (self.data_dir / "meta.properties").exists():
            cid = kafka_cluster_id()
            cmd = self._java(libs) + [
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cid,
                "-c",
                str(self.home / "server.properties"),
                "--ignore-formatted",
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=self.home)
            if res.returncode != 0:
                raise ServiceStartError(f"kafka storage format failed:\n{res.stdout}\n{res.stderr}")
            log.info("kafka.formatted", cluster_id=cid, data=str(self.data_dir))

    def _java(self, libs: Path) -> list[str]:
        return [
            os.environ.get("JAVA", "java"),
            f"-Xms{self.settings.kafka.heap}",
            f"-Xmx{self.settings.kafka.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home}/log4j2.properties",
            f"-Dkafka.logs.dir={self.home}/logs",
            "-cp",
            f"{libs}/*",
        ]

    def command(self) -> list[str]:
        return self._java(self._libs()) + ["kafka.Kafka", str(self.home / "server.properties")]

    def answers(self) -> bool:
        from pipelines.clients import kafka_io

        return kafka_io.ping(self.settings, timeout_ms=2000)


class FerretDBService(Service):
    """FerretDB v1 with its SQLite backend, speaking the MongoDB wire protocol."""

    name = "ferretdb"

    @property
    def port(self) -> int:
        return self.settings.mongo.port

    @property
    def embedded(self) -> bool:
        return self.settings.mongo.embedded

    @property
    def address(self) -> str:
        return self.settings.mongo.safe_uri

    def prepare(self) -> None:
        self._binary = provision.ferretdb_binary(self.settings)
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "state").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            str(provision.ferretdb_binary(self.settings)),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.home}/data/",
            f"--state-dir={self.home}/state",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=info",
            "--log-format=text",
        ]

    def answers(self) -> bool:
        from pipelines.clients import mongo

        return mongo.ping(self.settings, timeout_ms=1000)


def services(settings: Settings) -> list[Service]:
    return [KafkaService(settings), FerretDBService(settings)]
