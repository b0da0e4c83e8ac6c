"""Operational changes to a consumed topic lose nothing (DESIGN section 5, "start applies once").

A group's `start` applies only the first time it reads a topic. Partitions it has no valid
committed offset for later (partitions added, offsets out of range, topic recreated) are
read from their earliest retained offset, with a warning naming the partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tidings import App, Event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class Change(Event):
    n: int


@pytest.fixture
def admin() -> Iterator[AdminClient]:
    yield AdminClient({"bootstrap.servers": require_kafka()})


def produce(partition_values: list[tuple[int, int]], topic: str) -> None:
    """Write Change events straight to partitions with a fresh producer (no tidings)."""
    producer = Producer({"bootstrap.servers": require_kafka()})
    for partition, n in partition_values:
        producer.produce(
            topic,
            value=f'{{"n": {n}}}'.encode(),
            partition=partition,
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", f"id-{topic}-{n}".encode()),
                ("ce_source", b"test"),
                ("ce_type", b"Change"),
                ("content-type", b"application/json"),
            ],
        )
    assert producer.flush(10) == 0


def make_app(topic: str, seen: list[int], partitions: int = 2) -> App:
    app = App("changes", broker=f"kafka://{require_kafka()}", delays=False)
    t = app.topic(topic, partitions=partitions)

    @app.consumer(t, group=f"{topic}-latest", start="latest")
    def handle(event: Change) -> None:
        seen.append(event.n)

    return app


def test_partitions_added_to_a_running_group_are_read_from_their_start_within_30_s(
    topic_name: str, admin: AdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []
    app = make_app(topic_name, seen)
    try:
        with app.running(), caplog.at_level(logging.WARNING, logger="tidings"):
            wait_until(lambda: app.backend.groups() != [], 30, "the group")
            time.sleep(3)  # joined and positioned at the end
            produce([(0, 1), (1, 2)], topic_name)
            wait_until(lambda: sorted(seen) == [1, 2], 30, "events on the first partitions")
            admin.create_partitions([NewPartitions(topic_name, 4)])[topic_name].result(10)
            added = time.monotonic()
            produce([(2, 3), (3, 4), (2, 5)], topic_name)  # before the group sees them
            wait_until(lambda: sorted(seen) == [1, 2, 3, 4, 5], 40, "events on new partitions")
            assert time.monotonic() - added < 30
        assert f"{topic_name}[2]" in caplog.text and "earliest" in caplog.text
    finally:
        app.close()


def test_a_returning_group_whose_offsets_are_out_of_range_reads_from_the_earliest(
    topic_name: str, admin: AdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []
    app = make_app(topic_name, seen, partitions=1)
    try:
        with app.running():
            wait_until(lambda: app.backend.groups() != [], 30, "the group")
            time.sleep(3)
            produce([(0, n) for n in range(3)], topic_name)
            wait_until(lambda: len(seen) == 3, 30, "the first events")
        produce([(0, n) for n in range(3, 10)], topic_name)  # offsets 3..9, while it is away
        # Retention passes the committed offset (3): only 6..9 are left.
        done = admin.delete_records([KafkaTP(topic_name, 0, 6)])
        for future in done.values():
            future.result(10)
        with app.running(), caplog.at_level(logging.WARNING, logger="tidings"):
            wait_until(lambda: len(seen) == 7, 30, "the retained events")
        assert seen == [0, 1, 2, 6, 7, 8, 9]
        assert f"{topic_name}[0]" in caplog.text and "out of range" in caplog.text
    finally:
        app.close()


def recreate(admin: AdminClient, topic: str) -> None:
    """Create `topic` again (1 partition) as soon as the broker has finished deleting it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("slow", [False, True], ids=["at-once", "after-12s"])
def test_a_topic_recreated_under_a_running_group_is_read_from_its_start(
    topic_name: str, admin: AdminClient, caplog: pytest.LogCaptureFixture, slow: bool
) -> None:
    seen: list[int] = []
    app = make_app(topic_name, seen, partitions=1)
    try:
        with app.running(), caplog.at_level(logging.WARNING, logger="tidings"):
            wait_until(lambda: app.backend.groups() != [], 30, "the group")
            time.sleep(3)
            produce([(0, n) for n in range(5)], topic_name)
            wait_until(lambda: len(seen) == 5, 30, "the first events")
            time.sleep(2.5)  # committed (and re-committed) at offset 5
            admin.delete_topics([topic_name])[topic_name].result(10)
            if slow:
                time.sleep(12)  # the worker notices it is gone (metadata refresh: 10 s)
            recreate(admin, topic_name)
            produce([(0, n) for n in range(100, 110)], topic_name)  # offsets 0..9 again
            new = set(range(100, 110))
            wait_until(lambda: new <= set(seen), 40, "every event of the new topic")
        deleted = [r for r in caplog.records if "was deleted;" in r.getMessage()]
        assert len(deleted) == (1 if slow else 0), [r.getMessage() for r in deleted]
        assert "Unknown topic or partition" not in caplog.text
        assert ("exists again" if slow else "was deleted and created again") in caplog.text
        # A restart goes on where the new topic's events end: nothing is read again.
        before = len(seen)
        with app.running():
            produce([(0, 200)], topic_name)
            wait_until(lambda: len(seen) > before, 30, "the event after the restart")
            time.sleep(1)
        assert seen[before:] == [200]
    finally:
        app.close()
