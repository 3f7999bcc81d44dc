"""The stores of an environment as objects (issue 21, part 2): a :class:`Lake` reads and writes
its tables at any Hadoop URI and keeps its caches to itself; the stream's offset log is read
through the session's Hadoop file systems, so a checkpoint may be a URI like the lake."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import functions as F

from pipelines.clients.hadoop import HadoopFiles
from pipelines.core.config import Settings
from pipelines.core.reconcile import OffsetRange, batch_ranges
from pipelines.lake import deltalog, recompute, tables
from pipelines.lake.tables import Lake

TABLE = tables.Table("serving/kpi_route_monthly", ("month",))


def _rows(spark, month: str, n: int):
    return spark.range(n).select(F.lit("EWR").alias("origin"), F.lit(month).alias("month"),
                                 F.col("id").alias("flights"))  # fmt: skip


def test_a_lake_at_a_file_uri_reads_writes_and_counts_its_versions(spark, tmp_path: Path) -> None:
    lake = Lake(spark, f"file://{tmp_path}/lake/")
    assert lake.root == f"file://{tmp_path}/lake" and lake.version(TABLE) == -1
    assert not lake.exists(TABLE)
    assert lake.read(TABLE, "origin string, month string, flights long").count() == 0
    lake.overwrite(_rows(spark, "2013-01", 3).unionByName(_rows(spark, "2013-02", 2)), TABLE)
    lake.overwrite(_rows(spark, "2013-01", 5), TABLE, ["2013-01"])
    assert lake.exists(TABLE) and lake.version(TABLE) == 1
    assert (tmp_path / "lake" / "serving" / "kpi_route_monthly" / "_delta_log").is_dir()
    got = {r.month: r.n for r in lake.read(TABLE).groupBy("month").agg(F.count("*").alias("n"))
           .collect()}  # fmt: skip
    assert got == {"2013-01": 5, "2013-02": 2}
    assert lake.read_where(TABLE, "month", ["2013-02"]).count() == 2
    lake.drop([TABLE])
    assert not lake.exists(TABLE) and not (tmp_path / "lake" / "serving").joinpath(
        "kpi_route_monthly").exists()  # fmt: skip


def test_two_lakes_in_one_process_keep_their_own_cached_frames(spark, tmp_path: Path) -> None:
    """The reference frames are cached by each lake until its tables move: two environments
    in one process (a test beside a bench) never see each other's."""
    first, second = Lake(spark, str(tmp_path / "a")), Lake(spark, str(tmp_path / "b"))
    airlines = tables.REFERENCE["airlines"]
    first.overwrite(spark.createDataFrame([("AA", "American")], "_id string, name string"),
                    airlines)  # fmt: skip
    a = recompute.reference_frames(first)
    assert [r._id for r in a[0].collect()] == ["AA"]
    assert recompute.reference_frames(second)[0].count() == 0  # empty, typed: not the first's
    assert recompute.reference_frames(first) == a  # cached while the table has not moved
    first.overwrite(spark.createDataFrame([("UA", "United")], "_id string, name string"),
                    airlines)  # fmt: skip
    again = recompute.reference_frames(first)
    assert again != a and [r._id for r in again[0].collect()] == ["UA"]


def test_the_offset_log_is_read_through_hadoops_file_systems(spark, tmp_path: Path) -> None:
    """``reconcile.batch_ranges`` over ``HadoopFiles`` at a ``file://`` checkpoint: the same
    ranges as from the folder (the files as Spark 4.2 writes them, NUL byte included)."""
    meta = '{"batchWatermarkMs":0,"batchTimestampMs":1,"conf":{}}'
    for name, text in (("sources/0/0", '\x00v1\n{"t":{"0":5}}'),
                       ("offsets/0", f'v1\n{meta}\n{{"t":{{"0":8}}}}'),
                       ("offsets/1", f'v1\n{meta}\n{{"t":{{"0":9,"1":4}}}}')):  # fmt: skip
        (tmp_path / "ckpt" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ckpt" / name).write_text(text)
    files = HadoopFiles(spark)

    def read(name: str) -> str:
        return files.read_text(f"file://{tmp_path}/ckpt/{name}")

    assert batch_ranges(read, 0) == [OffsetRange("t", 0, 5, 8)]
    assert batch_ranges(read, 1) == [OffsetRange("t", 0, 8, 9), OffsetRange("t", 1, 0, 4)]
    assert batch_ranges(read, 2) is None  # not written yet: FileNotFoundError, an OSError


def test_checkpoints_may_be_uris_like_the_lake(settings: Settings) -> None:
    uri = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"checkpoints": "hdfs://namenode:8020/tarmac/checkpoints/"})})  # fmt: skip
    assert uri.checkpoint_root == "hdfs://namenode:8020/tarmac/checkpoints"
    assert Path(settings.checkpoint_root).is_absolute()


def _table(frame) -> list[tuple]:
    return sorted(tuple(r) for r in frame.collect())


def test_a_kept_table_reads_again_only_the_partitions_commits_touched(
    spark, tmp_path: Path, monkeypatch
) -> None:
    """``Lake.read_kept`` (the profile's read of the KPI tables): the whole table, from memory
    but for the partitions the commits since the kept version touched, whoever wrote them;
    the whole table again when the log cannot tell (a schema change, commits not there)."""
    lake, other = Lake(spark, f"file://{tmp_path}/lake"), Lake(spark, f"file://{tmp_path}/lake")
    seen: list[set[str] | None] = []
    touched = deltalog.touched_partitions

    def spy(*args, **kwargs):
        seen.append(touched(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(deltalog, "touched_partitions", spy)
    three = _rows(spark, "2013-01", 3).unionByName(_rows(spark, "2013-02", 2))
    lake.overwrite(three.unionByName(_rows(spark, "2013-03", 1)), TABLE)
    lake.append(_rows(spark, "2013-03", 1), TABLE)  # a second file in March
    kept = lake.read_kept(TABLE)
    assert _table(kept) == _table(lake.read(TABLE)) and seen == []  # first: read whole
    assert lake.read_kept(TABLE) is kept  # no commit since: the same frame, nothing read

    lake.overwrite(_rows(spark, "2013-01", 4), TABLE, ["2013-01"])  # its own refresh
    other.append(_rows(spark, "2013-04", 2), TABLE)  # another job's commit
    before = lake.version(TABLE)
    other.compact(TABLE, ["2013-03"])  # OPTIMIZE: March's two files rewritten as one
    assert lake.version(TABLE) == before + 1
    again = lake.read_kept(TABLE)
    assert seen[-1] == {"2013-01", "2013-04", "2013-03"}  # February from memory
    assert _table(again) == _table(lake.read(TABLE))
    assert {r.month: r.n for r in again.groupBy("month").agg(F.count("*").alias("n")).collect()
            } == {"2013-01": 4, "2013-02": 2, "2013-03": 2, "2013-04": 2}  # fmt: skip

    # a new column (the whole table overwritten with its schema): read whole
    other.overwrite(_rows(spark, "2013-05", 1).withColumn("extra", F.lit(1)), TABLE)
    whole = lake.read_kept(TABLE)
    assert seen[-1] is None and "extra" in whole.columns
    assert _table(whole) == _table(lake.read(TABLE))

    # each frame replaced freed its blocks (a refresh every few seconds adds one)
    ids = []
    for month in ("2013-06", "2013-07", "2013-08"):
        lake.append(_rows(spark, month, 1), TABLE)
        ids.append(lake.read_kept(TABLE)._jdf.queryExecution().analyzed().rdd().id())
    stored = {r.id() for r in spark.sparkContext._jsc.sc().getRDDStorageInfo()
              if r.numCachedPartitions() > 0}  # fmt: skip
    assert stored & set(ids) == {ids[-1]}

    # commits the log does not hold (cleaned up): the log cannot tell
    uri, version = lake.uri(TABLE), lake.version(TABLE)
    assert touched(lake.files, uri, "month", version, version + 2) is None


def test_a_kept_frame_whose_blocks_are_lost_is_read_again(spark, tmp_path: Path) -> None:
    """A kept frame is a local checkpoint: blocks lost with their executor fail the next
    action with Spark's "Checkpoint block ... not found", which ``publish_profile`` takes as
    the sign to forget the kept frames and read the tables again."""
    lake = Lake(spark, str(tmp_path / "lake"))
    lake.overwrite(_rows(spark, "2013-01", 3), TABLE)
    kept = lake.read_kept(TABLE)
    kept._jdf.queryExecution().analyzed().rdd().unpersist(True)  # as if its executor died
    try:
        kept.count()
    except Exception as exc:  # noqa: BLE001 - py4j's error
        assert tables.lost_kept_block(exc), exc
    else:
        raise AssertionError("the lost blocks were not noticed")
    lake.forget_kept()
    assert lake.read_kept(TABLE).count() == 3
