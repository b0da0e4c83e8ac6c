"""Where a newly assigned partition starts reading (DESIGN section 5, "start applies once").

A valid committed offset is kept. `start` applies only to a group's first read of a topic:
a partition without a committed offset on a topic the group has read before (partitions
were added; the topic was recreated, which deletes its offsets), or whose committed offset
is out of range (retention passed it, or it was committed for an earlier topic of the same
name), starts at its earliest retained offset, with a warning naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from tidings.backends.kafka.topic_watch import TopicWatch
from tidings.exceptions import TidingsError
from tidings.records import Start, TopicPartition

LOG = logging.getLogger("tidings.kafka")

OffsetLookup = Callable[[list[TopicPartition], Start], dict[TopicPartition, int]]
"""The earliest retained or the latest offset of each partition (the admin's ListOffsets)."""


def starting_points(
    consumer: Consumer,
    partitions: list[KafkaTP],
    *,
    group: str | None,
    start: Start,
    offsets: OffsetLookup,
    watch: TopicWatch | None,
    read: set[str],
    timeout: float,
    member_id: str,
) -> list[KafkaTP]:
    """Decide where each newly assigned partition starts ("start applies once").

    A valid committed offset is kept. `start` applies only to a group's first read of a
    topic: a partition without a committed offset on a topic the group has committed on
    before (partitions were added), or whose committed offset is out of range (retention
    passed it, or the topic was recreated), starts at its earliest retained offset,
    with a warning. "latest" is pinned to the end offset as of now: librdkafka resolves
    it lazily, after the assignment is reported, and would skip what came between.
    """
    try:
        committed = consumer.committed(partitions, timeout=timeout)
        if any(p.error is not None for p in committed):
            return partitions
        have = [TopicPartition(p.topic, p.partition) for p in committed if p.offset >= 0]
        lows = offsets(have, "earliest") if have else {}
        highs = offsets(have, "latest") if have else {}
        known = _topics_read_before(consumer, committed, read, timeout)
        fresh = [
            TopicPartition(p.topic, p.partition)
            for p in committed
            if p.offset < 0 and p.topic not in known
        ]
        ends = offsets(fresh, "latest") if fresh and start == "latest" else {}
    except (KafkaException, TidingsError) as exc:
        LOG.warning("Kafka consumer %s: cannot check start offsets: %s", member_id, exc)
        return partitions
    out = []
    for p in committed:
        tp = TopicPartition(p.topic, p.partition)
        if p.offset >= 0:
            low, high = lows[tp], highs[tp]
            if watch is not None and watch.committed_for_another(p.topic, p.metadata):
                LOG.warning(
                    "group %s: the committed offset %d of %s[%d] was committed for an "
                    "earlier topic of that name (it was deleted and created again); "
                    "reading the partition from its earliest retained offset, %d.",
                    group, p.offset, p.topic, p.partition, low,
                )  # fmt: skip
                out.append(KafkaTP(p.topic, p.partition, low))
                continue
            if low <= p.offset <= high:
                out.append(p)
                continue
            LOG.warning(
                "group %s: the committed offset %d of %s[%d] is out of range (the "
                "partition holds offsets %d to %d: retention deleted what was not read, "
                "or the topic was recreated); reading it from its earliest retained "
                "offset, %d.",
                group, p.offset, p.topic, p.partition, low, high - 1, low,
            )  # fmt: skip
            out.append(KafkaTP(p.topic, p.partition, low))
        elif p.topic in known:
            LOG.warning(
                "group %s: %s[%d] has no committed offset although the group has read "
                "%s before (partitions were added, or the topic was recreated); reading it "
                "from the earliest offset.",
                group, p.topic, p.partition, p.topic,
            )  # fmt: skip
            out.append(KafkaTP(p.topic, p.partition))  # auto.offset.reset: earliest
        elif start == "latest":
            out.append(KafkaTP(p.topic, p.partition, ends[tp]))
        else:
            # No explicit logical offset: a listener's seek must not be undone when
            # librdkafka resolves it later. auto.offset.reset is earliest.
            out.append(KafkaTP(p.topic, p.partition))
    return out


def _topics_read_before(
    consumer: Consumer, committed: list[KafkaTP], read: set[str], timeout: float
) -> set[str]:
    """Return the topics of `committed` on which the group committed any partition."""
    # A topic this member read before counts too: deleting a topic deletes its offsets.
    known = {p.topic for p in committed if p.offset >= 0 or p.topic in read}
    unsure = {p.topic for p in committed if p.offset < 0} - known
    for topic in sorted(unsure):
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        count = len(meta.partitions) if meta is not None and meta.error is None else 0
        others = [KafkaTP(topic, i) for i in range(count)]
        if others and any(p.offset >= 0 for p in consumer.committed(others, timeout=timeout)):
            known.add(topic)
    return known
