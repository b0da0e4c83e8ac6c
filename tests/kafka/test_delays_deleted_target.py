"""A delayed record whose target topic was deleted is dropped, not retried forever.

Before, the scheduler retried it every second and every later record of its tier partition
(other topics' too) waited behind it; on a shared cluster one deleted topic stopped delays.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

from tests.conftest import drop_kafka_topics
from tests.helpers import wait_until
from tests.kafka.conftest import open_delay_backend
from tidings.records import OutgoingRecord, TopicSpec

pytestmark = pytest.mark.kafka


def test_a_deleted_target_topic_does_not_hold_back_other_delays(
    bootstrap: str, delay_namespace: str, topic_name: str, group_name: str
) -> None:
    gone, kept = f"{topic_name}-gone", f"{topic_name}-kept"
    backend = open_delay_backend(bootstrap, delay_namespace)
    try:
        backend.ensure_topics([TopicSpec(gone, partitions=1), TopicSpec(kept, partitions=1)])
        due = time.time() + 1.0  # same due time: same tier partition order, `gone` first
        backend.produce(
            [
                OutgoingRecord(gone, b"k", b"lost", (), 0, due),
                OutgoingRecord(kept, b"k", b"kept", (), 0, due),
            ]
        )
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.delete_topics([gone], operation_timeout=10)[gone].result(15)
        wait_until(lambda: gone not in admin.list_topics(timeout=5).topics, 15, "deletion")
        # A worker started after the deletion (its scheduler knows the topic is gone).
        worker = open_delay_backend(bootstrap, delay_namespace)
        consumer = worker.open_consumer(group_name, [kept], start="earliest", listener=None)
        got: list[bytes | None] = []
        try:
            wait_until(
                lambda: bool(got.extend(r.value for r in consumer.fetch(10, 0.2))) or bool(got),
                20,
                "the other topic's delayed record",
            )
        finally:
            consumer.close()
            worker.close()
        assert got == [b"kept"]
    finally:
        backend.close()
        drop_kafka_topics(topic_name)
