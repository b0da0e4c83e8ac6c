"""100,000 pending delayed events: the scheduler holds only each partition's head."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from tests.helpers import wait_until
from tests.kafka.conftest import open_delay_backend
from tidings.records import OutgoingRecord, TopicSpec

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PENDING = 100_000
# Holding them all as Python objects would take well over 40 MB (a Record with a 100-byte
# value and CloudEvents-sized headers is ~450 bytes); the heads of a few tier partitions
# and librdkafka's own (non-Python) buffers are far below the bound.
BOUND = 16_000_000


def test_many_pending_delays_keep_the_worker_small(
    bootstrap: str, delay_namespace: str, topic_name: str, group_name: str
) -> None:
    backend = open_delay_backend(bootstrap, delay_namespace)
    backend.ensure_topics([TopicSpec(topic_name, partitions=3)])
    value = b"v" * 100
    headers = (("ce_type", b"Reminder"), ("ce_id", b"x" * 36))
    due = time.time() + 3600
    for start in range(0, PENDING, 20_000):
        backend.produce(
            [
                OutgoingRecord(topic_name, str(i).encode(), value, headers, deliver_at=due + i)
                for i in range(start, start + 20_000)
            ]
        )
    tracemalloc.start()
    consumer = backend.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    try:
        # The scheduler (started with the consumer) reads the tier topics' heads and waits.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert consumer.fetch(100, 0.2) == []  # nothing is due for an hour
        _, peak = tracemalloc.get_traced_memory()
        # Tracing every allocation slows Python several times over: counting 100,000 tier
        # records under it took 7-10 s, against the count's own bound of connect_timeout.
        tracemalloc.stop()
        wait_until(
            lambda: (
                next(t for t in backend.topics() if t.name == topic_name).delayed_pending == PENDING
            ),
            60,
            "every delayed record to be counted as pending",
        )
    finally:
        tracemalloc.stop()
        consumer.close()
        backend.close()
    print(f"peak {peak:,}")
    assert peak < BOUND, f"Python heap peaked at {peak:,} bytes with {PENDING:,} pending"
