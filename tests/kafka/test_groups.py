"""Group membership, rebalances, and the admin view of groups on a real broker."""

from __future__ import annotations

import time

import pytest

from tests.kafka.conftest import Recorder
from tidings.backends.base import ConsumerHandle
from tidings.backends.kafka import KafkaBackend
from tidings.exceptions import ConfigurationError
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec

pytestmark = pytest.mark.kafka


def spin(consumers: list[ConsumerHandle], done: object, timeout: float = 30.0) -> None:
    """Fetch on every consumer (as the runtime does) until `done()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.fetch(10, 0.05)
        if done():  # type: ignore[operator]
            return
    raise AssertionError("timed out waiting for the group to settle")


def test_two_members_split_partitions_and_one_leaving_moves_them(
    backend: KafkaBackend, topic_name: str, group_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=4)])
    every = [TopicPartition(topic_name, p) for p in range(4)]
    l1, l2 = Recorder(), Recorder()
    c1 = backend.open_consumer(
        group_name, [topic_name], start="earliest", listener=l1, member_id="m1"
    )
    spin([c1], lambda: c1.assignment() == every)
    c2 = backend.open_consumer(
        group_name, [topic_name], start="earliest", listener=l2, member_id="m2"
    )
    try:
        spin(
            [c1, c2],
            lambda: (
                len(c1.assignment()) == 2
                and len(c2.assignment()) == 2
                and sorted(c1.assignment() + c2.assignment()) == every
            ),
        )
        assert ("revoked", sorted(set(every) - set(c1.assignment()))) in l1.events
        assert l2.events == [("assigned", c2.assignment())]

        info = next(g for g in backend.groups() if g.group == group_name)
        assert info.members == ("m1", "m2")
        assert {p.member for p in info.partitions} == {"m1", "m2"}
        with pytest.raises(ConfigurationError, match="live member"):
            backend.reset_group(group_name, topic_name, "earliest")

        c1.close()
        assert l1.events[-1][0] == "revoked"
        spin([c2], lambda: c2.assignment() == every)
    finally:
        c1.close()
        c2.close()
    assert l2.events[-1] == ("revoked", every)


def test_groups_report_lag_and_reset_moves_offsets(
    backend: KafkaBackend, topic_name: str, group_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    backend.produce([OutgoingRecord(topic_name, None, b"old", partition=p) for p in (0, 1, 1)])
    # Timestamps are milliseconds stamped at produce(); an ack can come back within the
    # same millisecond, so keep `middle` clear of both batches.
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    backend.produce([OutgoingRecord(topic_name, None, b"new", partition=p) for p in (0, 1)])
    c = backend.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    spin([c], lambda: len(c.assignment()) == 2)
    c.commit({TopicPartition(topic_name, 0): 1}, sync=True)
    c.close()

    info = next(g for g in backend.groups() if g.group == group_name)
    assert info.state == "Empty" and info.members == ()
    assert [(p.partition, p.committed, p.end) for p in info.partitions] == [(0, 1, 2)]
    assert info.lag == 1

    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    assert backend.reset_group(group_name, topic_name, "latest") == {tp0: 2, tp1: 3}
    assert backend.reset_group(group_name, topic_name, middle) == {tp0: 1, tp1: 2}
    assert backend.reset_group(group_name, topic_name, time.time() + 60) == {tp0: 2, tp1: 3}
    assert backend.reset_group(group_name, topic_name, "earliest") == {tp0: 0, tp1: 0}
    info = next(g for g in backend.groups() if g.group == group_name)
    assert [(p.partition, p.committed) for p in info.partitions] == [(0, 0), (1, 0)]
    with pytest.raises(ConfigurationError, match="earliest"):
        backend.reset_group(group_name, topic_name, "yesterday")

    topic = next(t for t in backend.topics() if t.name == topic_name)
    assert (topic.partitions, topic.start_offsets, topic.end_offsets) == (2, (0, 0), (2, 3))
