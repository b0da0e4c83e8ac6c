"""Produce and fetch against a real broker: round trip, partitioning, commits, seek/pause."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import require_kafka
from tests.kafka.conftest import Recorder
from tidings import App, Event, Published, PublishError
from tidings.backends.kafka import KafkaBackend
from tidings.backends.memory import MemoryBackend
from tidings.partitioner import partition_for
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec

pytestmark = pytest.mark.kafka


class Ping(Event):
    n: int


def drain(consumer: object, want: int, timeout: float = 15.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.fetch(100, 0.2)  # type: ignore[attr-defined]
    return got


def test_round_trip_keeps_keys_values_headers_and_partitions(
    backend: KafkaBackend, topic_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=4)])
    records = [
        OutgoingRecord(topic_name, f"key-{i % 9}".encode(), f"v{i}".encode(), (("h", b"%d" % i),))
        for i in range(40)
    ]
    records.append(OutgoingRecord(topic_name, None, None, (("empty", b""),), partition=3))
    meta = backend.produce(records)
    assert [m.topic for m in meta] == [topic_name] * 41
    for rec, m in zip(records[:40], meta, strict=False):
        assert rec.key is not None
        assert m.partition == partition_for(rec.key, 4)
    assert meta[-1].partition == 3

    memory = MemoryBackend()
    memory.ensure_topics([TopicSpec(topic_name, partitions=4)])
    assert [m.partition for m in memory.produce(records[:40])] == [m.partition for m in meta[:40]]

    reader = backend.open_consumer(None, [topic_name], start="earliest", listener=None)
    try:
        got = drain(reader, 41)
    finally:
        reader.close()
    assert len(got) == 41
    by_value = {r.value: r for r in got}
    first = by_value[b"v0"]
    assert (first.key, first.headers, first.partition) == (
        b"key-0",
        (("h", b"0"),),
        meta[0].partition,
    )
    assert first.offset == meta[0].offset
    assert abs(first.timestamp - time.time()) < 60
    tombstone = by_value[None]
    assert (tombstone.key, tombstone.headers, tombstone.partition) == (None, (("empty", b""),), 3)
    for p in range(4):  # offset order within each partition
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets)


def test_commit_then_reopen_resumes_at_committed(
    backend: KafkaBackend, topic_name: str, group_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([OutgoingRecord(topic_name, None, b"%d" % i) for i in range(10)])
    listener = Recorder()
    c = backend.open_consumer(group_name, [topic_name], start="earliest", listener=listener)
    got = drain(c, 10)
    assert [r.offset for r in got] == list(range(10))
    c.commit({TopicPartition(topic_name, 0): 6}, sync=True)
    c.close()
    assert listener.events == [
        ("assigned", [TopicPartition(topic_name, 0)]),
        ("revoked", [TopicPartition(topic_name, 0)]),
    ]
    c = backend.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    try:
        assert [r.offset for r in drain(c, 4)] == [6, 7, 8, 9]
    finally:
        c.close()


def test_pause_resume_and_seek(backend: KafkaBackend, topic_name: str, group_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    backend.produce(
        [OutgoingRecord(topic_name, None, b"%d" % i, partition=i % 2) for i in range(8)]
    )
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)

    class SeekOnAssign(Recorder):
        def on_assigned(self, partitions: list[TopicPartition]) -> None:
            super().on_assigned(partitions)
            c.pause([tp1])
            c.seek(tp0, 2)  # just assigned: fetching has not started yet

    listener = SeekOnAssign()
    c = backend.open_consumer(group_name, [topic_name], start="earliest", listener=listener)
    try:
        got = drain(c, 2)
        assert [(r.partition, r.offset) for r in got] == [(0, 2), (0, 3)]
        assert drain(c, 1, timeout=1.0) == []  # partition 1 stays paused
        assert c.assignment() == [tp0, tp1]
        c.seek(tp0, 1)
        c.resume([tp1])
        got = drain(c, 7)
        assert sorted((r.partition, r.offset) for r in got) == [
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
        ]
    finally:
        c.close()


def test_publish_async_holds_no_thread_per_publish(topic_name: str) -> None:
    """Delivery reports complete the awaiting futures: the executor is not used per call."""
    app = App("async-pub", broker=f"kafka://{require_kafka()}")
    topic = app.topic(topic_name, partitions=2)
    submitted: list[object] = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    async def publish_all() -> list[Published]:
        asyncio.get_running_loop().set_default_executor(Counting(max_workers=1))
        await app.publish_async(topic, Ping(n=-1))  # connects and learns the topic
        warm = len(submitted)
        done = await asyncio.gather(*(app.publish_async(topic, Ping(n=i)) for i in range(200)))
        assert len(submitted) == warm
        return done

    published = asyncio.run(publish_all())
    assert len({(p.partition, p.offset) for p in published}) == 200
    app.close()


def test_publish_async_after_close_fails_at_once_with_a_clear_error(
    bootstrap: str, topic_name: str
) -> None:
    b = KafkaBackend(bootstrap, url=f"kafka://{bootstrap}", delays=False)
    b.ensure_topics([TopicSpec(topic_name)])
    record = OutgoingRecord(topic_name, None, b"v")
    assert asyncio.run(b.produce_async([record]))[0].offset == 0
    b.close()
    started = time.monotonic()
    with pytest.raises(PublishError, match="closed; nothing was sent"):
        asyncio.run(b.produce_async([record]))
    assert time.monotonic() - started < 1
