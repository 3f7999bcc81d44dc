"""Fetch and build the components of the embedded stack into a cache outside git.

- Kafka broker jars: ``mvn dependency:copy-dependencies`` on ``resources/kafka-pom.xml``, plus the
  log4j2 SLF4J binding that matches the slf4j-api Maven resolved.
- Spark's Kafka connector of the exact pyspark version: ``resources/spark-kafka-pom.xml``, minus
  every jar pyspark already ships (Hadoop client, snappy, lz4, slf4j, scala...).
- FerretDB: the module from the Go module proxy, copied to a writable folder with its
  ``build/version/version.txt`` written (a plain ``go install`` panics at start without it).

Each step writes a ``.complete`` marker last, so an interrupted step is redone, a finished one
never is. Each step holds the cache's lock (``flock`` on ``<cache>/.provision.lock``) while it
checks and fetches: two processes provisioning at once (two commands, parallel test workers)
fetch once, the second waits and finds the marker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import structlog
from tqdm import tqdm

from pipelines.core import files
from pipelines.core.config import Settings
from pipelines.core.exceptions import ProvisionError

T = TypeVar("T")

log = structlog.get_logger(__name__)

_MARKER = ".complete"
RESOURCES = Path(__file__).parent / "resources"
_JAR_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


def _run_with_progress(cmd: list[str], desc: str, cwd: Path, tick: re.Pattern[str]) -> None:
    """Run ``cmd``; each output line matching ``tick`` advances a progress bar."""
    log.info("provision.run", step=desc, cmd=" ".join(cmd))
    tail: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except FileNotFoundError as exc:
        raise ProvisionError(
            f"{desc}: '{cmd[0]}' is not installed; install it (see README, 'Fresh machine')"
        ) from exc
    assert proc.stdout is not None
    interactive = sys.stderr.isatty()
    with tqdm(
        desc=desc, unit=" steps", leave=interactive, mininterval=0.2 if interactive else 10.0
    ) as bar:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-30:]
            if tick.search(line):
                bar.update(1)
    if proc.wait() != 0:
        raise ProvisionError(
            f"{desc} failed (exit {proc.returncode}). Last output:\n" + "\n".join(tail)
        )


def _mvn_copy(pom: str, out: Path, props: dict[str, str], desc: str) -> None:
    work = out.parent / (out.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(RESOURCES / pom, work / "pom.xml")
    cmd = [
        "mvn",
        "-B",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    cmd += [f"-D{k}={v}" for k, v in props.items()]
    _run_with_progress(cmd, desc, work, re.compile(r"Downloaded from|Copying "))
    shutil.rmtree(work, ignore_errors=True)


def _mvn_get(coords: str, out: Path, desc: str) -> None:
    cmd = ["mvn", "-B", "dependency:copy", f"-Dartifact={coords}", f"-DoutputDirectory={out}"]
    _run_with_progress(cmd, desc, out, re.compile(r"Downloaded from|Copying "))


def _jar_versions(folder: Path) -> dict[str, str]:
    found = {}
    for jar in folder.glob("*.jar"):
        if m := _JAR_VERSION.match(jar.name):
            found[m["name"]] = m["version"]
    return found


@contextlib.contextmanager
def cache_lock(settings: Settings) -> Iterator[None]:
    """Hold the provisioning cache's lock (blocking) for one check-and-fetch."""
    with files.exclusive(settings.stack.cache / ".provision.lock"):
        yield


def _locked(step: Callable[[Settings], T]) -> Callable[[Settings], T]:
    @functools.wraps(step)
    def wrapper(settings: Settings) -> T:
        with cache_lock(settings):
            return step(settings)

    return wrapper


def slf4j_binding(slf4j_api_version: str) -> str:
    """The log4j2 artifact that binds the given slf4j-api (1.x: slf4j-impl, 2.x: slf4j2-impl)."""
    major = slf4j_api_version.split(".", 1)[0]
    if major not in {"1", "2"}:
        raise ProvisionError(f"unsupported slf4j-api version {slf4j_api_version}")
    return "log4j-slf4j2-impl" if major == "2" else "log4j-slf4j-impl"


@_locked
def kafka_home(settings: Settings) -> Path:
    """Folder holding ``libs/`` of the Kafka broker, fetched on first call."""
    home = settings.stack.cache / f"kafka-{settings.stack.kafka_version}"
    if (home / _MARKER).exists():
        return home
    libs = home / "libs"
    shutil.rmtree(home, ignore_errors=True)
    libs.mkdir(parents=True)
    _mvn_copy(
        "kafka-pom.xml",
        libs,
        {
            "kafka.version": settings.stack.kafka_version,
            "log4j.version": settings.stack.log4j_version,
        },
        f"Kafka {settings.stack.kafka_version} jars (mvn)",
    )
    slf4j = _jar_versions(libs).get("slf4j-api")
    if slf4j is None:
        raise ProvisionError(f"no slf4j-api jar resolved in {libs}; cannot pick a binding")
    binding = slf4j_binding(slf4j)
    _mvn_get(
        f"org.apache.logging.log4j:{binding}:{settings.stack.log4j_version}",
        libs,
        f"SLF4J binding {binding} for slf4j-api {slf4j}",
    )
    (home / _MARKER).write_text(json.dumps({"slf4j_api": slf4j, "binding": binding}))
    log.info("provision.kafka.ready", home=str(home), slf4j_api=slf4j, binding=binding)
    return home


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


@_locked
def spark_kafka_jars(settings: Settings) -> list[Path]:
    """Spark's Kafka connector jars for the installed pyspark, fetched on first call."""
    import pyspark

    version = pyspark.__version__
    home = settings.stack.cache / f"spark-kafka-{version}"
    if not (home / _MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        try:
            _mvn_copy(
                "spark-kafka-pom.xml",
                home,
                {"spark.version": version},
                f"spark-sql-kafka {version} jars (mvn)",
            )
        except ProvisionError as exc:
            raise ProvisionError(
                f"spark-sql-kafka-0-10_2.13:{version} could not be fetched from Maven Central; "
                "the pyspark pin must be a version whose connector is published.\n" + str(exc)
            ) from exc
        shipped = set(_jar_versions(pyspark_jars_dir()))
        for name in _dedupe(home.glob("*.jar"), shipped):
            (home / name).unlink()
        (home / _MARKER).write_text(version)
    return sorted(home.glob("*.jar"))


DELTA_VERSION = "4.4.0"


def delta_artifacts(pyspark_version: str, delta_version: str = DELTA_VERSION) -> list[str]:
    """Maven coordinates of Delta Lake for a pyspark version: the Spark-versioned build
    (``delta-spark_4.2_2.13``; the plain ``delta-spark_2.13`` 4.4.x is not published) and
    ``delta-storage``. Their other dependencies (antlr4, ...) ship with pyspark."""
    spark_minor = ".".join(pyspark_version.split(".")[:2])
    return [
        f"io.delta:delta-spark_{spark_minor}_2.13:{delta_version}",
        f"io.delta:delta-storage:{delta_version}",
    ]


@_locked
def delta_jars(settings: Settings) -> list[Path]:
    """Delta Lake's jars for the installed pyspark, fetched on first call (``mvn``)."""
    import pyspark

    home = settings.stack.cache / f"delta-{DELTA_VERSION}-spark-{pyspark.__version__}"
    if not (home / _MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for coords in delta_artifacts(pyspark.__version__):
            try:
                _mvn_get(coords, home, f"{coords} (mvn)")
            except ProvisionError as exc:
                raise ProvisionError(
                    f"{coords} could not be fetched from Maven Central; Delta Lake must match "
                    "the pyspark pin (see pyproject.toml).\n" + str(exc)
                ) from exc
        (home / _MARKER).write_text(DELTA_VERSION)
    return sorted(home.glob("*.jar"))


def _dedupe(jars: Iterable[Path], shipped: set[str]) -> list[str]:
    """Names of jars whose artifact pyspark already ships (whatever its version)."""
    drop = []
    for jar in jars:
        m = _JAR_VERSION.match(jar.name)
        if m and m["name"] in shipped:
            drop.append(jar.name)
    return drop


# Two fixes applied to FerretDB's source before it is built (the cache folder carries the
# suffix, so a binary built without them is rebuilt):
#
# 1. v1.24's SQLite backend creates the unique index of every collection on
#    ``_ferretdb_sjson->"_id"`` but looks documents up by ``_ferretdb_sjson->'$._id'``: SQLite
#    matches index expressions as written, so every find, update, replace and delete by ``_id``
#    scans the whole table (measured: a find_one at row 30,000 of 33,660 takes 233 ms; EXPLAIN
#    QUERY PLAN says SCAN). Same symptom as FerretDB/FerretDB#4646 on PostgreSQL. The fix writes
#    the lookup like the index; results are unchanged.
# 2. v1.24's ``update`` command closes each statement's query with a ``defer`` inside its loop
#    over the statements (``internal/handler/msg_update.go``), so every statement keeps its
#    SQLite rows, and a connection of the database's pool (100), until the whole command ends;
#    the statement's write then waits for one more connection. One command of 100 statements, or
#    two of 50 at once, hold the whole pool and wait for each other for ever, and with them every
#    other request on that database (the 30-day soak at 720x stopped this way after 60 min: 99
#    connections held by two 50-statement bulk writes, goroutine dump). The fix closes each
#    statement's query when it is done; results are unchanged.
FERRETDB_BUILD_SUFFIX = "+tarmac.2"
FERRETDB_PATCHES: list[tuple[str, str, str]] = [
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + \"->'_id'\"",
    ),
    (
        "internal/handler/msg_update.go",
        "\t\tcloser := iterator.NewMultiCloser()\n\t\tdefer closer.Close()\n",
        "\t\tcloser := iterator.NewMultiCloser()\n",
    ),
    (
        "internal/handler/msg_update.go",
        '\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n',
        '\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n'
        "\t\tcloser.Close() // tarmac: this statement's rows and connection back now\n",
    ),
]


def patch_ferretdb(src: Path) -> None:
    """Apply FERRETDB_PATCHES to a writable copy of FerretDB's source; fail if one no longer
    applies (a new FerretDB version: check whether it is still needed)."""
    for rel, old, new in FERRETDB_PATCHES:
        path = src / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise ProvisionError(
                f"the FerretDB patch for {rel} does not apply to this version; review "
                "FERRETDB_PATCHES in pipelines/stack/provision.py"
            )
        path.write_text(text.replace(old, new))


@_locked
def ferretdb_binary(settings: Settings) -> Path:
    """Path of a FerretDB binary built from the Go module proxy, built on first call."""
    version = settings.stack.ferretdb_version
    home = settings.stack.cache / f"ferretdb-{version}{FERRETDB_BUILD_SUFFIX}"
    binary = home / "ferretdb"
    if (home / _MARKER).exists() and binary.exists():
        return binary
    if shutil.which("go") is None:
        raise ProvisionError("FerretDB is built with Go; install Go 1.22+ (see README)")
    module = "github.com/FerretDB/FerretDB"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"],
            cwd=home,
            capture_output=True,
            text=True,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise ProvisionError(f"go mod download {module}@{version} failed:\n{exc.stderr}") from exc
    src = home / "src"
    shutil.copytree(json.loads(out.stdout)["Dir"], src)
    for path in [src, *src.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    patch_ferretdb(src)
    (src / "build" / "version" / "version.txt").write_text(version + "\n")
    (src / "build" / "version" / "package.txt").write_text("tarmac\n")
    _run_with_progress(
        ["go", "build", "-v", "-trimpath", "-o", str(binary), "./cmd/ferretdb"],
        f"FerretDB {version} (go build)",
        src,
        re.compile(r"\S"),
    )
    shutil.rmtree(src, ignore_errors=True)
    (home / _MARKER).write_text(version)
    log.info("provision.ferretdb.ready", binary=str(binary))
    return binary
