from pathlib import Path

import pytest

from pipelines.clients import jars
from pipelines.core.exceptions import ProvisionError
from pipelines.stack import provision


@pytest.mark.parametrize(
    ("slf4j", "binding"),
    [("1.7.36", "log4j-slf4j-impl"), ("2.0.17", "log4j-slf4j2-impl")],
)
def test_slf4j_binding_matches_api(slf4j: str, binding: str) -> None:
    assert provision.slf4j_binding(slf4j) == binding


def test_slf4j_binding_unknown_major() -> None:
    with pytest.raises(ProvisionError):
        provision.slf4j_binding("3.0.0")


def test_dedupe_drops_jars_pyspark_ships_whatever_their_version(tmp_path: Path) -> None:
    names = [
        "spark-sql-kafka-0-10_2.13-4.2.0.jar",
        "kafka-clients-3.9.2.jar",
        "hadoop-client-runtime-3.5.0.jar",
        "lz4-java-1.10.1.jar",
        "commons-pool2-2.13.1.jar",
    ]
    shipped = {"hadoop-client-runtime", "lz4-java", "spark-core_2.13"}
    dropped = jars._dedupe([tmp_path / n for n in names], shipped)
    assert sorted(dropped) == ["hadoop-client-runtime-3.5.0.jar", "lz4-java-1.10.1.jar"]


def test_poms_are_shipped_with_the_package() -> None:
    assert (provision.RESOURCES / "kafka-pom.xml").exists()  # the broker's
    assert (jars.RESOURCES / "spark-kafka-pom.xml").exists()  # the Spark session's
    assert (jars.RESOURCES / "fairscheduler.xml").exists()


def test_ferretdb_patch_applies_once_and_refuses_a_changed_source(tmp_path: Path) -> None:
    """Every fix of ``FERRETDB_PATCHES`` applies to a source holding its text once (two fixes
    may share a file), and a source already patched, or changed, is refused."""
    files: dict[str, str] = {}
    for rel, old, _new in provision.FERRETDB_PATCHES:
        files[rel] = files.get(rel, "package x\n") + f"\n{old}\n"
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    provision.patch_ferretdb(tmp_path)
    for rel, old, new in provision.FERRETDB_PATCHES:
        text = (tmp_path / rel).read_text()
        assert new in text and old not in text.replace(new, ""), rel
    with pytest.raises(ProvisionError, match="does not apply"):
        provision.patch_ferretdb(tmp_path)  # already patched, or a new FerretDB version
