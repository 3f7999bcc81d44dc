"""``clients.cds``: which JVM options the driver gets for its class archive, and that they are
added to the parameters' own, never in their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.clients import cds, spark
from pipelines.core import config


@pytest.fixture
def archive(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "spark-driver-x.jsa"
    monkeypatch.setattr(cds, "archive", lambda settings: path)
    monkeypatch.delenv(cds.DUMP_ENV, raising=False)
    return path


def test_no_archive_no_option(archive: Path) -> None:
    assert cds.java_options(config.load("ci")) == ""


def test_an_archive_is_mapped_quietly(archive: Path) -> None:
    archive.write_bytes(b"jsa")
    assert cds.java_options(config.load("ci")) == f"-XX:SharedArchiveFile={archive} {cds.QUIET}"


def test_turned_off_in_the_parameters(archive: Path) -> None:
    archive.write_bytes(b"jsa")
    settings = config.load("ci")
    off = settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"class_data_sharing": False})}
    )
    assert cds.java_options(off) == ""
    assert cds.ensure(off) is None


def test_the_builder_child_writes_where_it_is_told(archive: Path, monkeypatch) -> None:
    monkeypatch.setenv(cds.DUMP_ENV, "/tmp/x.partial")
    assert cds.java_options(config.load("ci")).startswith("-XX:ArchiveClassesAtExit=/tmp/x.partial")


def test_added_to_the_parameters_jvm_options(archive: Path) -> None:
    archive.write_bytes(b"jsa")
    settings = config.load("ci")
    own = settings.spark.conf["spark.driver.extraJavaOptions"]
    conf = spark.session_conf(settings)
    assert conf["spark.driver.extraJavaOptions"] == f"{own} {cds.java_options(settings)}"
    assert "SharedArchiveFile" not in conf.get("spark.executor.extraJavaOptions", "")


def test_a_folder_that_cannot_be_written_means_no_archive(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(cds, "archive", lambda settings: blocker / "cds" / "spark-driver-x.jsa")
    assert cds.ensure(config.load("ci")) is None  # `stack up` goes on without it
    assert cds.java_options(config.load("ci")) == ""
