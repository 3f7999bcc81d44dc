"""Files at any Hadoop URI (a local path, ``file://``, ``hdfs://``, ``s3a://``), read, listed,
written and removed through the Spark session's own file systems and configuration (its
``spark.hadoop.*``): what the lake's log probes, the stream's offset log and the refreshes'
turns (``lake/turns``) need wherever they live, with no client of our own.

Each call goes through py4j to the driver's JVM (about 1 ms locally); the callers read a
handful of small files (a Delta log's newest commits, a micro-batch's two offset files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class HadoopFiles:
    """The Hadoop file systems of ``spark``'s driver, by URI."""

    spark: SparkSession

    def _fs(self, uri: str) -> tuple[Any, Any]:
        jvm = self.spark.sparkContext._jvm  # noqa: SLF001 - Hadoop has no Python API
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
        path = jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(conf), path

    def exists(self, uri: str) -> bool:
        fs, path = self._fs(uri)
        return bool(fs.exists(path))

    def read_text(self, uri: str) -> str:
        """The whole file as UTF-8 text; ``FileNotFoundError`` when it is not there (one call
        to the file system: no ``exists`` first)."""
        from py4j.protocol import Py4JJavaError

        fs, path = self._fs(uri)
        try:
            stream = fs.open(path)
        except Py4JJavaError as exc:
            if _not_found(exc):
                raise FileNotFoundError(uri) from None
            raise
        try:
            jvm = self.spark.sparkContext._jvm  # noqa: SLF001
            return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write_text(self, uri: str, text: str) -> None:
        """Create (or replace) the file ``uri`` holding ``text`` (UTF-8), its folders too."""
        fs, path = self._fs(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def names(self, uri: str) -> list[str]:
        """The names of what the folder ``uri`` holds (none when it is not there)."""
        from py4j.protocol import Py4JJavaError

        fs, path = self._fs(uri)
        try:
            return [str(status.getPath().getName()) for status in fs.listStatus(path)]
        except Py4JJavaError as exc:
            if _not_found(exc):
                return []
            raise

    def delete(self, uri: str) -> bool:
        """Remove ``uri`` (a folder with everything in it); False when it was not there."""
        fs, path = self._fs(uri)
        return bool(fs.delete(path, True))


def _not_found(exc: Any) -> bool:
    """True when a py4j error is Hadoop's "no such file" (``java.io.FileNotFoundException``)."""
    return exc.java_exception.getClass().getName() == "java.io.FileNotFoundException"
