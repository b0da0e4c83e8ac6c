"""Listing topics while an operator deletes others lists what is there instead of failing."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

from tidings.backends.kafka import KafkaBackend
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec

pytestmark = pytest.mark.kafka


def test_topics_lists_the_rest_while_topics_are_being_deleted(
    backend: KafkaBackend, bootstrap: str, topic_name: str
) -> None:
    doomed = [f"{topic_name}-{i}" for i in range(30)]
    backend.ensure_topics([TopicSpec(topic_name), *(TopicSpec(n, partitions=2) for n in doomed)])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    done = threading.Event()

    def delete() -> None:
        for name in doomed:
            admin.delete_topics([name], operation_timeout=5)
            time.sleep(0.02)
        done.set()

    threading.Thread(target=delete, daemon=True).start()
    listings = 0
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        names = {t.name for t in backend.topics()}  # raised "Unknown topic or partition"
        assert topic_name in names
        listings += 1
    assert done.is_set() and listings >= 1


def test_groups_lists_the_rest_while_a_groups_topics_are_being_deleted(
    backend: KafkaBackend, bootstrap: str, topic_name: str, group_name: str
) -> None:
    """A group keeps its committed offsets of a deleted topic for a while; listing offsets
    of such a topic answered "No leaders found" until the bound, and `groups()` failed."""
    doomed = [f"{topic_name}-{i}" for i in range(10)]
    backend.ensure_topics([TopicSpec(topic_name), *(TopicSpec(n, partitions=2) for n in doomed)])
    backend.produce([OutgoingRecord(n, b"k", b"v", ()) for n in [topic_name, *doomed]])
    consumer = backend.open_consumer(
        group_name, [topic_name, *doomed], start="earliest", listener=None
    )
    fetched: list[Record] = []
    deadline = time.monotonic() + 30
    while len(fetched) < 11 and time.monotonic() < deadline:
        fetched.extend(consumer.fetch(100, 0.2))
    consumer.commit({r.tp: r.offset + 1 for r in fetched}, sync=True)
    consumer.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics(doomed, operation_timeout=0)  # not waiting: list while it happens
    for _ in range(5):
        started = time.monotonic()
        (group,) = [g for g in backend.groups() if g.group == group_name]
        assert time.monotonic() - started < 5
    assert TopicPartition(topic_name, 0) in {
        TopicPartition(p.topic, p.partition) for p in group.partitions
    }
