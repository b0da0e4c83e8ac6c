"""Listing topics while an operator deletes others lists what is there instead of failing."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

from tidings.backends.kafka import KafkaBackend
from tidings.records import TopicSpec

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
