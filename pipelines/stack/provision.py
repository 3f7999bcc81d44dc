"""Fetch and build the embedded stack's services into a cache outside git (the jars of a Spark
session are ``clients/jars``; the same helpers, lock and markers).

- Kafka broker jars: ``mvn dependency:copy-dependencies`` on ``resources/kafka-pom.xml``, plus the
  log4j2 SLF4J binding that matches the slf4j-api Maven resolved.
- FerretDB: the module from the Go module proxy, copied to a writable folder with its
  ``build/version/version.txt`` written (a plain ``go install`` panics at start without it), with
  :data:`FERRETDB_PATCHES` applied.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import structlog

from pipelines.clients.jars import (
    MARKER,
    jar_versions,
    locked,
    mvn_copy,
    mvn_get,
    run_with_progress,
)
from pipelines.core.config import Settings
from pipelines.core.exceptions import ProvisionError

log = structlog.get_logger(__name__)

RESOURCES = Path(__file__).parent / "resources"  # the Kafka broker's pom


def slf4j_binding(slf4j_api_version: str) -> str:
    """The log4j2 artifact that binds the given slf4j-api (1.x: slf4j-impl, 2.x: slf4j2-impl)."""
    major = slf4j_api_version.split(".", 1)[0]
    if major not in {"1", "2"}:
        raise ProvisionError(f"unsupported slf4j-api version {slf4j_api_version}")
    return "log4j-slf4j2-impl" if major == "2" else "log4j-slf4j-impl"


@locked
def kafka_home(settings: Settings) -> Path:
    """Folder holding ``libs/`` of the Kafka broker, fetched on first call."""
    home = settings.stack.cache / f"kafka-{settings.stack.kafka_version}"
    if (home / MARKER).exists():
        return home
    libs = home / "libs"
    shutil.rmtree(home, ignore_errors=True)
    libs.mkdir(parents=True)
    mvn_copy(
        RESOURCES / "kafka-pom.xml",
        libs,
        {
            "kafka.version": settings.stack.kafka_version,
            "log4j.version": settings.stack.log4j_version,
        },
        f"Kafka {settings.stack.kafka_version} jars (mvn)",
    )
    slf4j = jar_versions(libs).get("slf4j-api")
    if slf4j is None:
        raise ProvisionError(f"no slf4j-api jar resolved in {libs}; cannot pick a binding")
    binding = slf4j_binding(slf4j)
    mvn_get(
        f"org.apache.logging.log4j:{binding}:{settings.stack.log4j_version}",
        libs,
        f"SLF4J binding {binding} for slf4j-api {slf4j}",
    )
    (home / MARKER).write_text(json.dumps({"slf4j_api": slf4j, "binding": binding}))
    log.info("provision.kafka.ready", home=str(home), slf4j_api=slf4j, binding=binding)
    return home


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


@locked
def ferretdb_binary(settings: Settings) -> Path:
    """Path of a FerretDB binary built from the Go module proxy, built on first call."""
    version = settings.stack.ferretdb_version
    home = settings.stack.cache / f"ferretdb-{version}{FERRETDB_BUILD_SUFFIX}"
    binary = home / "ferretdb"
    if (home / MARKER).exists() and binary.exists():
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
    run_with_progress(
        ["go", "build", "-v", "-trimpath", "-o", str(binary), "./cmd/ferretdb"],
        f"FerretDB {version} (go build)",
        src,
        re.compile(r"\S"),
    )
    shutil.rmtree(src, ignore_errors=True)
    (home / MARKER).write_text(version)
    log.info("provision.ferretdb.ready", binary=str(binary))
    return binary
