"""The jars a Spark session needs beside pyspark's, fetched from Maven Central into a cache
outside git on first use (``mvn``), on any machine that runs a job:

- Spark's Kafka connector of the exact pyspark version: ``resources/spark-kafka-pom.xml``, minus
  every jar pyspark already ships (Hadoop client, snappy, lz4, slf4j, scala...);
- Delta Lake's Spark-versioned build and ``delta-storage``.

Each fetch writes a ``.complete`` marker last, so an interrupted one is redone, a finished one
never is, and holds the cache's lock (``flock`` on ``<cache>/.provision.lock``) while it checks
and fetches: two processes at once (two commands, parallel test workers) fetch once. The
development stack's own builds (``stack/provision``: the Kafka broker, FerretDB) use the same
helpers.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import structlog
from tqdm import tqdm

from pipelines.core import files
from pipelines.core.config import Settings
from pipelines.core.exceptions import ProvisionError

T = TypeVar("T")

log = structlog.get_logger(__name__)

MARKER = ".complete"
RESOURCES = Path(__file__).parent / "resources"  # the poms and Spark's fair scheduler pools
_JAR_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


def run_with_progress(cmd: list[str], desc: str, cwd: Path, tick: re.Pattern[str]) -> None:
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


def mvn_copy(pom: Path, out: Path, props: dict[str, str], desc: str) -> None:
    work = out.parent / (out.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(pom, work / "pom.xml")
    cmd = [
        "mvn",
        "-B",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    cmd += [f"-D{k}={v}" for k, v in props.items()]
    run_with_progress(cmd, desc, work, re.compile(r"Downloaded from|Copying "))
    shutil.rmtree(work, ignore_errors=True)


def mvn_get(coords: str, out: Path, desc: str) -> None:
    cmd = ["mvn", "-B", "dependency:copy", f"-Dartifact={coords}", f"-DoutputDirectory={out}"]
    run_with_progress(cmd, desc, out, re.compile(r"Downloaded from|Copying "))


def jar_versions(folder: Path) -> dict[str, str]:
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


def locked(step: Callable[[Settings], T]) -> Callable[[Settings], T]:
    @functools.wraps(step)
    def wrapper(settings: Settings) -> T:
        with cache_lock(settings):
            return step(settings)

    return wrapper


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


@locked
def spark_kafka_jars(settings: Settings) -> list[Path]:
    """Spark's Kafka connector jars for the installed pyspark, fetched on first call."""
    import pyspark

    version = pyspark.__version__
    home = settings.stack.cache / f"spark-kafka-{version}"
    if not (home / MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        try:
            mvn_copy(
                RESOURCES / "spark-kafka-pom.xml",
                home,
                {"spark.version": version},
                f"spark-sql-kafka {version} jars (mvn)",
            )
        except ProvisionError as exc:
            raise ProvisionError(
                f"spark-sql-kafka-0-10_2.13:{version} could not be fetched from Maven Central; "
                "the pyspark pin must be a version whose connector is published.\n" + str(exc)
            ) from exc
        shipped = set(jar_versions(pyspark_jars_dir()))
        for name in _dedupe(home.glob("*.jar"), shipped):
            (home / name).unlink()
        (home / MARKER).write_text(version)
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


@locked
def delta_jars(settings: Settings) -> list[Path]:
    """Delta Lake's jars for the installed pyspark, fetched on first call (``mvn``)."""
    import pyspark

    home = settings.stack.cache / f"delta-{DELTA_VERSION}-spark-{pyspark.__version__}"
    if not (home / MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for coords in delta_artifacts(pyspark.__version__):
            try:
                mvn_get(coords, home, f"{coords} (mvn)")
            except ProvisionError as exc:
                raise ProvisionError(
                    f"{coords} could not be fetched from Maven Central; Delta Lake must match "
                    "the pyspark pin (see pyproject.toml).\n" + str(exc)
                ) from exc
        (home / MARKER).write_text(DELTA_VERSION)
    return sorted(home.glob("*.jar"))


def _dedupe(jars: Iterable[Path], shipped: set[str]) -> list[str]:
    """Names of jars whose artifact pyspark already ships (whatever its version)."""
    drop = []
    for jar in jars:
        m = _JAR_VERSION.match(jar.name)
        if m and m["name"] in shipped:
            drop.append(jar.name)
    return drop


def java_home(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The JDK the stack runs: ``$JAVA_HOME`` when set (pyspark's ``spark-class`` runs its
    ``bin/java``), else the home of the ``java`` the embedded Kafka starts (``$JAVA``, default
    ``java`` on ``$PATH``; links resolved: ``/usr/bin/java`` -> ``/usr/lib/jvm/<jdk>``); None
    when there is neither."""
    if home := environ.get("JAVA_HOME", "").strip():
        return Path(home)
    found = shutil.which(environ.get("JAVA", "java"), path=environ.get("PATH", os.defpath))
    if found is None:
        return None
    java = Path(found).resolve()
    return java.parent.parent if java.parent.name == "bin" else None
