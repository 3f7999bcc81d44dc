"""The driver's class archive (``clients.cds``) on the real JDK: ``stack up`` built it, and a
new driver JVM maps Spark's classes from it; a JDK or run that cannot write one leaves a note,
and jobs start without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.clients import cds
from pipelines.core.config import REPO_ROOT, Settings
from tests.conftest import write_parameters

PROBE = """
import sys
from pipelines.core import config
from pipelines.clients.spark import build_session
settings = config.load("ci")
spark = build_session(settings, "cds-probe")
spark.range(100).selectExpr("id % 3 as k").groupBy("k").count().collect()
spark.stop()
"""


def test_a_new_driver_maps_spark_from_the_archive(stack: Settings, tmp_path: Path) -> None:
    path = cds.ensure(stack)
    assert path is not None and path == cds.archive(stack) and path.stat().st_size > 10**7
    loaded = tmp_path / "classes.log"
    own = stack.spark.conf.get("spark.driver.extraJavaOptions", "")
    logging = f"{own} -Xlog:class+load=info:file={loaded}"
    conf = {**stack.spark.conf, "spark.driver.extraJavaOptions": logging}
    settings = stack.model_copy(update={"spark": stack.spark.model_copy(update={"conf": conf})})
    write_parameters(settings, tmp_path / "params")
    env = {"TARMAC_PARAMETERS_DIR": str(tmp_path / "params")}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env={**_environ(), **env})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = loaded.read_text().splitlines()
    context = [line for line in lines if " org.apache.spark.SparkContext " in line]
    assert context and context[0].endswith("source: shared objects file (top)"), context
    # Spark's own classes (not its lambdas, made at run time; Delta's jar is not on the JVM's
    # class path but in Spark's loader, which a dynamic archive does not cover): 5,008 of 5,074
    spark = [line for line in lines if " org.apache.spark." in line and "Lambda" not in line
             and "delta-spark" not in line and "source: __" not in line]  # fmt: skip
    shared = [line for line in spark if "shared objects file" in line]
    assert len(shared) > 0.9 * len(spark), (len(shared), len(spark))


def test_a_failed_build_leaves_a_note_and_no_option(
    stack: Settings, tmp_path: Path, monkeypatch
) -> None:
    target = tmp_path / "spark-driver-test.jsa"
    monkeypatch.setattr(cds, "archive", lambda settings: target)
    monkeypatch.setenv("TARMAC_PARAMETERS_DIR", str(tmp_path / "none"))  # the child cannot start
    assert cds.ensure(stack) is None
    note = target.with_suffix(".failed")
    assert note.exists() and note.read_text().startswith("exit 2\nConfigError: no parameters")
    assert not list(tmp_path.glob("*.partial")) and not target.exists()
    assert cds.java_options(stack) == ""
    assert cds.ensure(stack) is None  # not tried again until the note is removed


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != cds.DUMP_ENV}
