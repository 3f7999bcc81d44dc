"""The embedded services' pure helpers (``pipelines/stack/services.py``)."""

from __future__ import annotations

import base64

from pipelines.stack.services import kafka_cluster_id


def test_kafka_cluster_ids_are_never_taken_for_an_option() -> None:
    # URL-safe base64 starts with "-" once in 64 draws: Kafka's storage tool then read the id
    # as an option and `make stack-up` failed to format the broker (seen in test_commands)
    ids = [kafka_cluster_id() for _ in range(5_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
