"""The stream's hot path (the live board, ``jobs/flights_board.py``, whose buckets also give the
hours' KPI rows) against its lake path, on the real stack.

One window of a busy afternoon (2013-03-04 10:00-16:00Z: ~840 events, reference data and the
weather of those hours) is landed once and served by the lake path (the source of truth). Then
the hot path alone, over the same events:

- writes, in ``flights_by_hour_hot``, exactly the lake path's documents: board buckets (their
  map read through ``readmodels.hot_board``) and, derived from them when read
  (``readmodels.hour_row``), ``kpi_hourly`` rows, field for field but the wall-clock
  ``updated_at``;
- reads no Delta table inside a micro-batch: pointed at a lake that does not exist, it still
  serves every flight of every bucket (without the enrichment only the lake could give);
- gives the same documents whatever the order of the events, their duplicates and the way
  they are split into micro-batches (the property tests of the lake path's merge, extended to
  the live board's fold);
- changes nothing when run again.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer

from pipelines.clients import kafka_io, mongo
from pipelines.core.config import Settings
from pipelines.jobs import flights_stream
from pipelines.orchestration import loader
from pipelines.serving import readmodels
from tests.conftest import isolate

pytestmark = pytest.mark.integration

START = datetime(2013, 3, 4, 10, tzinfo=UTC)
END = datetime(2013, 3, 4, 16, tzinfo=UTC)
COLLECTIONS = (readmodels.BOARD, readmodels.KPI_HOURLY)


def _plain(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "updated_at"}


def lake_fields(db, collection: str) -> dict[str, dict]:
    """Each bucket as the lake path wrote it (no wall time)."""
    return {d["_id"]: _plain(d) for d in db[collection].find({})}


def hot_slots(db, collection: str) -> dict[str, dict]:
    """Each bucket as the hot path wrote it (in ``readmodels.HOT_OF[collection]``), as its
    readers see it in ``collection``'s shape (``readmodels.hot_view``), without the wall time."""
    docs = db[readmodels.HOT_OF[collection]].find({})
    return {d["_id"]: _plain(readmodels.hot_view(collection, d)) for d in docs}


def _with(settings: Settings, tmp, *, database: str, lake: str | None = None,
          topic: str | None = None) -> Settings:  # fmt: skip
    """``settings`` with its own checkpoints and database, and a lake or flights topic."""
    paths = {"checkpoints": str(tmp / "checkpoints")} | ({"lake": lake} if lake else {})
    update: dict = {"paths": settings.paths.model_copy(update=paths),
                    "mongo": settings.mongo.model_copy(update={"database": database})}  # fmt: skip
    if topic:
        topics = dict(settings.kafka.topics)
        topics["flights"] = topics["flights"].model_copy(update={"name": topic})
        update["kafka"] = settings.kafka.model_copy(update={"topics": topics})
    return settings.model_copy(update=update)


@pytest.fixture(scope="module")
def window(stack: Settings, tmp_path_factory) -> Iterator[Settings]:
    """The window landed and served by the lake path only (no hot document yet)."""
    unique = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("hot")
    settings = isolate(stack, tmp, unique)
    settings = settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{stack.mongo.database}_hot_{unique}"})})  # fmt: skip
    loader.load_window(settings, START, END)
    db = mongo.database(settings)
    assert not hot_slots(db, readmodels.BOARD)  # availableNow: the lake path alone
    yield settings
    db.client.drop_database(db.name)


@pytest.fixture(scope="module")
def hot_run(window: Settings) -> Settings:
    """The hot path alone, over the window's events, into the same documents."""
    result = flights_stream.run(window, hot=True, lake=False)
    assert result.batches == 0  # the lake path did not run: nothing appended twice
    return window


def test_both_paths_write_the_same_documents(hot_run: Settings) -> None:
    db = mongo.database(hot_run)
    for collection in COLLECTIONS:
        lake, hot = lake_fields(db, collection), hot_slots(db, collection)
        assert lake and hot == lake, collection
    state = db.pipeline_state.find_one({"_id": "flights_stream"})
    assert state["hot"]["rows"] == state["last_batch"]["accepted"]  # every event, one batch
    assert state["lake"]["batch_id"] == 0 == state["hot"]["batch_id"]
    assert "kpi" not in state  # no second hot query: the hour rows come from the board


def test_a_dates_buckets_give_its_day_document(hot_run: Settings) -> None:
    """A live date's hours, airlines and weather rows, derived from its board buckets when
    read (``readmodels.day_doc``), are the lake path's ``kpi_daily`` document, from the lake
    path's buckets and from the hot path's alike: the page can show them from the buckets
    the live board raises within seconds."""
    db = mongo.database(hot_run)
    days = list(db[readmodels.KPI_DAILY].find({}))
    assert days
    lake = {d["_id"]: d for d in db[readmodels.BOARD].find({})}
    hot = {d["_id"]: readmodels.hot_view(readmodels.BOARD, d)
           for d in db[readmodels.BOARD_HOT].find({})}  # fmt: skip
    fields = ("date", "flights", "hours", "carriers", "weather")
    for day in days:
        keys = readmodels.board_keys([day["_id"]])
        assert day["carriers"] and day["weather"] and day["hours"]
        for boards in (lake, hot):
            derived = readmodels.day_doc(day["_id"], [boards.get(k) for k in keys])
            assert {f: derived[f] for f in fields} == {f: day[f] for f in fields}
        assert derived["version"] == sum(lake[k]["version"] for k in keys if k in lake)


def test_the_page_sees_one_document_whichever_path_wrote_last(hot_run: Settings) -> None:
    db = mongo.database(hot_run)
    hot = {d["_id"]: d for d in db[readmodels.BOARD_HOT].find({})}
    for doc in db[readmodels.BOARD].find({}):
        shown = readmodels.resolve(doc, readmodels.hot_view(readmodels.BOARD, hot[doc["_id"]]))
        assert shown == doc  # the same version: a tie shows the lake's
    for row in db[readmodels.KPI_HOURLY].find({}):
        derived = readmodels.hot_view(readmodels.KPI_HOURLY, hot[row["_id"]])
        assert readmodels.resolve(row, derived) == row


def test_a_rerun_changes_nothing(hot_run: Settings) -> None:
    db = mongo.database(hot_run)
    every = [*COLLECTIONS, readmodels.BOARD_HOT]
    before = {c: list(db[c].find({})) for c in every}
    flights_stream.run(hot_run, hot=True, lake=False)
    assert {c: list(db[c].find({})) for c in every} == before


def test_the_hot_path_reads_no_delta_table(window: Settings, tmp_path) -> None:
    """Its lake does not exist: a micro-batch that read a Delta table would fail. It serves
    every flight of every bucket; what only the lake knows (weather, carrier names) is absent,
    and the lake folder was never created."""
    database = f"{window.mongo.database}_nolake"
    nolake = tmp_path / "no-lake"
    settings = _with(window, tmp_path, database=database, lake=str(nolake))
    try:
        flights_stream.run(settings, hot=True, lake=False)
        db = mongo.database(settings)
        hot = hot_slots(db, readmodels.BOARD)
        lake = lake_fields(mongo.database(window), readmodels.BOARD)
        assert {k: v["n"] for k, v in hot.items()} == {k: v["n"] for k, v in lake.items()}
        flights = [f for doc in hot.values() for f in doc["flights"]]
        assert not any("carrier_name" in f or "weather" in f for f in flights)
        assert any("weather" in f for d in lake.values() for f in d["flights"])
        assert not nolake.exists()
    finally:
        mongo.database(settings).client.drop_database(database)


def test_order_duplicates_and_batches_do_not_change_the_documents(
    window: Settings, tmp_path
) -> None:
    """The window's events again, shuffled, a fifth of them twice, on a topic of their own,
    read in micro-batches of 97: the same hot documents as the lake path's."""
    consumer = KafkaConsumer(
        window.kafka.topic("flights").name, bootstrap_servers=window.kafka.bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000,
    )  # fmt: skip
    values = [m.value for m in consumer]
    consumer.close()
    rnd = random.Random(2013)
    values += rnd.sample(values, len(values) // 5)
    rnd.shuffle(values)
    topic = f"{window.kafka.topic('flights').name}.shuffled"
    kafka_io.create_topic(window, topic, partitions=3)
    producer = kafka_io.producer(window, value_serializer=None)  # the values as they were
    try:
        for value in values:
            producer.send(topic, value)
        producer.flush()
    finally:
        producer.close()
    database = f"{window.mongo.database}_shuffled"
    settings = _with(window, tmp_path, database=database, topic=topic)
    try:
        result = flights_stream.run(settings, max_offsets_per_trigger=97, hot=True, lake=False)
        assert result.seconds > 0
        db = mongo.database(settings)
        state = db.pipeline_state.find_one({"_id": "flights_stream"})
        assert state["hot"]["batch_id"] >= len(values) // 97 - 1  # many micro-batches
        for collection in COLLECTIONS:
            lake = lake_fields(mongo.database(window), collection)
            assert hot_slots(db, collection) == lake, collection
    finally:
        mongo.database(settings).client.drop_database(database)
        kafka_io.delete_topics(window, [topic])


def test_a_steady_refresh_of_the_lake_path_compiles_next_to_no_class(window: Settings) -> None:
    """A refresh of one date needs ~270 generated classes, more than Spark's default cache
    holds (100): each refresh compiled ~260 of them again (and the JIT after it), the lake
    path's steady CPU. With ``spark.sql.codegen.cache.maxEntries`` (``clients/spark``) a
    steady refresh finds them compiled (measured: 4 for the second refresh). Since the
    profile's tables are kept (``Lake.read_kept``: the first refresh reads them whole, the
    second is the first to bring them up to date, with plans of its own) the third is the one
    held to it: six refreshes compiled 32, 16, 10, 8, 6 and 6 classes (30, 20, 14 in another
    run)."""
    from pipelines.clients.spark import build_session
    from pipelines.lake import recompute
    from pipelines.lake.tables import Lake
    from pipelines.serving import publish

    spark = build_session(window, "tests")
    lake, store = Lake.of(spark, window), mongo.Mongo.of(window)
    codegen = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics
    compiled = []
    for _ in range(3):
        before = codegen.METRIC_COMPILATION_TIME().getCount()
        publish.refresh(lake, store, [f"{START:%Y-%m-%d}"], horizon=None,
                        inputs=recompute.INPUTS[1:])  # fmt: skip
        compiled.append(codegen.METRIC_COMPILATION_TIME().getCount() - before)
    print("classes compiled by each refresh:", compiled)
    assert compiled[2] <= 20, compiled
