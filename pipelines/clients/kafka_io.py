"""Kafka at the edges: admin (topics), a no-loss producer, and a liveness probe."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import structlog
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2
from kafka.serializer import DefaultSerializer, JsonSerializer

from pipelines.core import reconcile
from pipelines.core.config import Settings, TopicSettings
from pipelines.core.exceptions import ServiceUnavailableError

log = structlog.get_logger(__name__)


def ping(settings: Settings, timeout_ms: int = 2000) -> bool:
    """True when the broker answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="tarmac-ping",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def admin_client(settings: Settings, timeout_ms: int = 10_000) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            client_id="tarmac-admin",
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise ServiceUnavailableError(
            f"no Kafka broker at {settings.kafka.bootstrap_servers}; "
            f"run `make stack-up` (env {settings.env}) or fix kafka.bootstrap_servers"
        ) from exc


def create_topic(
    settings: Settings, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> bool:
    """Create topic ``name`` unless it exists; True if created now. ``configs``: its topic
    configs (default: the retention of :class:`TopicSettings`' defaults)."""
    configs = TopicSettings(name=name).configs() if configs is None else configs
    admin = admin_client(settings)
    try:
        if name in set(admin.list_topics()):
            return False
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def ensure_topics(settings: Settings, keys: Iterable[str] | None = None) -> list[str]:
    """Create the topics named in the parameters (all, or ``keys``); return those created."""
    wanted = [settings.kafka.topic(k) for k in (keys or settings.kafka.topics)]
    admin = admin_client(settings)
    created = []
    try:
        existing = set(admin.list_topics())
        for topic in wanted:
            if topic.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(topic.name, topic.partitions, 1, topic_configs=topic.configs())]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    if created:
        log.info("kafka.topics.created", topics=created)
    return created


def cleanup_policy(settings: Settings, name: str) -> str | None:
    """The topic's ``cleanup.policy`` as the broker has it (``delete``, ``compact`` or both),
    or None if the broker cannot say (no such topic yet)."""
    admin = admin_client(settings)
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})],
            config_filter="all",
        )
        return found["topic"][name]["cleanup.policy"]["value"]
    except (KafkaError, KeyError, TypeError):
        return None
    finally:
        admin.close()


def topic_configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    """The configs of topics ``names`` the broker reports as set on the topic (Kafka's admin
    API, DescribeConfigs, non-default values): ``{name: {"retention.ms": "2592000000"}}``."""
    admin = admin_client(settings)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        return {
            name: {key: str(data.get("value") if isinstance(data, dict) else data)
                   for key, data in entries.items()}
            for name, entries in found.get("topic", {}).items()
        }  # fmt: skip
    finally:
        admin.close()


def offset_gaps(settings: Settings, key: str) -> str | None:
    """Why offsets of topic ``key`` may hold no record (``reconcile.gap_reason``: compacted,
    transactional), or None when every offset is a record; logged."""
    topic = settings.kafka.topic(key)
    policy = cleanup_policy(settings, topic.name)
    why = reconcile.gap_reason(topic.name, policy, topic.transactional)
    log.info("kafka.offset_gaps", topic=topic.name, cleanup_policy=policy, gaps=why)
    return why


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


class CachedKeyPartitioner(DefaultPartitioner):
    """Kafka's default murmur2 key partitioning, with the hash of each key remembered.

    kafka-python computes murmur2 in pure Python (~8 us a message); a flight's events share
    one key, so caching it keeps the placement identical to the Java client's and is cheaper.
    """

    def __init__(self, maxsize: int = 1 << 20):
        self._hash = lru_cache(maxsize=maxsize)(murmur2)

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):  # noqa: ANN001
        if serialized_key is None:
            return super().partition(topic, key, None, value, serialized_value, cluster)
        partitions = sorted(cluster.partitions_for_topic(topic))
        return partitions[(self._hash(bytes(serialized_key)) & 0x7FFFFFFF) % len(partitions)]


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A no-loss producer: acks=all, idempotence, retries; JSON values, string keys."""
    conf: dict[str, Any] = dict(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        retries=2_147_483_647,
        max_in_flight_requests_per_connection=5,
        compression_type="zstd",
        linger_ms=100,  # measured: zstd + 1 MiB batches + 100 ms linger is ~4x uncompressed
        batch_size=1024 * 1024,
        key_serializer=DefaultSerializer(),
        value_serializer=JsonSerializer(),
        partitioner=CachedKeyPartitioner(),
        client_id="tarmac-producer",
    )
    conf.update(overrides)
    if not ping(settings, timeout_ms=10_000):
        raise ServiceUnavailableError(
            f"no Kafka broker at {settings.kafka.bootstrap_servers}; run `make stack-up`"
        )
    return KafkaProducer(**conf)
