"""Exactly once on Kafka: a fenced zombie commits nothing; aborted outputs stay invisible."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import wait_until
from tidings import App, Context, Event
from tidings.backends.base import ConsumerHandle, TopicInfo
from tidings.backends.kafka import KafkaBackend
from tidings.exceptions import TransactionAborted
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec

pytestmark = pytest.mark.kafka


def owned(handle: ConsumerHandle) -> bool:
    handle.fetch(10, 0.1)
    return bool(handle.assignment())


def read_committed(backend: KafkaBackend, topic: str, at_least: int = 0) -> list[Record]:
    """Everything a tidings reader (read_committed, like `tidings tail`) sees in `topic`.

    Reads until `at_least` records came (at most 20 s), then 0.5 s more: a new reader's
    first fetch can take a second or two, and duplicates would arrive in that time.
    """
    handle = backend.open_consumer(None, [topic], start="earliest", listener=None)
    out: list[Record] = []
    deadline = time.monotonic() + 20
    try:
        while len(out) < at_least and time.monotonic() < deadline:
            out += handle.fetch(100, 0.1)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            out += handle.fetch(100, 0.1)
    finally:
        handle.close()
    return out


def test_a_fenced_zombie_commits_nothing(backend: KafkaBackend, topic_name: str) -> None:
    src, out = topic_name, f"{topic_name}-out"
    backend.ensure_topics([TopicSpec(src, partitions=1), TopicSpec(out, partitions=1)])
    tp = TopicPartition(src, 0)
    group = f"{topic_name}-g"
    zombie = backend.open_consumer(group, [src], start="earliest", listener=None, member_id="m1")
    successor: ConsumerHandle | None = None
    try:
        wait_until(lambda: owned(zombie), 30, "the first member's assignment")
        zombie.commit_transaction([OutgoingRecord(out, b"k", b"1", (), None, None)], {tp: 1})
        # The same member restarted (same group.instance.id, so the same transactional.id):
        # the coordinator hands it the partition and its producer fences the old one.
        successor = backend.open_consumer(
            group, [src], start="earliest", listener=None, member_id="m1"
        )
        wait_until(lambda: owned(successor), 30, "the successor's assignment")  # type: ignore[arg-type]
        successor.commit_transaction([OutgoingRecord(out, b"k", b"2", (), None, None)], {tp: 2})
        with pytest.raises(TransactionAborted):
            zombie.commit_transaction([OutgoingRecord(out, b"k", b"3", (), None, None)], {tp: 3})
        seen = [r.value for r in read_committed(backend, out, at_least=2)]
        assert seen == [b"1", b"2"]
        (info,) = [g for g in backend.groups() if g.group == group]
        assert {p.partition: p.committed for p in info.partitions if p.topic == src} == {0: 2}
    finally:
        zombie.close()
        if successor is not None:
            successor.close()


def test_aborted_outputs_are_invisible_to_tidings_readers(
    backend: KafkaBackend, bootstrap: str, topic_name: str
) -> None:
    """tidings reads read_committed by default: an aborted transaction's records (which are
    in the log, as a read_uncommitted consumer shows) never reach its readers."""
    backend.ensure_topics([TopicSpec(topic_name, partitions=1)])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic_name})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic_name, b"aborted")
    producer.flush(10)
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topic_name, b"committed")
    producer.commit_transaction(10)

    assert [r.value for r in read_committed(backend, topic_name, at_least=1)] == [b"committed"]
    raw = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic_name}-raw",
            "isolation.level": "read_uncommitted",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        raw.subscribe([topic_name])
        values: list[bytes | None] = []
        deadline = time.monotonic() + 15
        while len(values) < 2 and time.monotonic() < deadline:
            msg = raw.poll(0.2)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        assert values == [b"aborted", b"committed"]
    finally:
        raw.close()


class FencedOrder(Event):
    n: int


def test_a_fenced_producer_is_replaced_and_nothing_is_duplicated(
    bootstrap: str, topic_name: str
) -> None:
    """Another producer takes the member's transactional.id mid-run: the member's next
    transaction is aborted, it rewinds, starts a new producer and carries on; every input
    still has exactly one output."""
    url = f"kafka://{bootstrap}"
    app = App(
        "eos",
        broker=url,
        status_interval=None,
        delays=False,
        consumer_config={"group.instance.id": f"inst-{topic_name}"},
    )
    src = app.topic(topic_name, partitions=2)
    out = app.topic(f"{topic_name}-out", partitions=2)
    handled: Counter[int] = Counter()

    @app.consumer(src, group=f"{topic_name}-g", exactly_once=True)
    async def transform(e: FencedOrder, ctx: Context) -> None:
        handled[e.n] += 1
        await ctx.publish_async(out, FencedOrder(n=e.n), key=ctx.key)

    def outputs(at_least: int) -> list[int]:
        return [
            FencedOrder.model_validate_json(r.value or b"").n
            for r in read_committed(app.backend, out.name, at_least)
        ]

    try:
        app.publish_many(src, [(str(i % 5), FencedOrder(n=i)) for i in range(50)])
        with app.running():
            wait_until(lambda: len(handled) == 50, 30, "the first 50 orders")
            assert len(outputs(50)) == 50
            fencer = Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "transactional.id": f"tidings.tx.{topic_name}-g.inst-{topic_name}",
                }
            )
            fencer.init_transactions(10)  # the member's producer is fenced from now on
            app.publish_many(src, [(str(i % 5), FencedOrder(n=i)) for i in range(50, 100)])
            wait_until(lambda: len(handled) == 100, 30, "every order handled")
            got = outputs(100)
    finally:
        app.close()
    assert sorted(got) == list(range(100)), (len(got), sorted(Counter(got).items()))
    assert sum(handled.values()) > 100  # the aborted transaction's events were handled again


def test_reading_a_topic_that_ends_with_a_commit_marker_stops_at_once(
    backend: KafkaBackend, bootstrap: str, topic_name: str
) -> None:
    """`tidings tail` / `tidings dlq list` read up to the end offset; the last offset of a
    topic written in transactions is a commit marker no reader sees. They must stop once
    the reader's position passes it, not after waiting 10 s for it."""
    from tidings.cli.reader import read_existing

    backend.ensure_topics([TopicSpec(topic_name, partitions=1)])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic_name})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic_name, b"only")
    producer.commit_transaction(10)
    # The topic's description, as `backend.topics()` gives it (which also counts pending
    # delays on the shared broker: slow, and not what is measured here).
    info = TopicInfo(topic_name, 1, None, (0,), (2,))  # offset 1: the commit marker
    t0 = time.monotonic()
    assert [r.value for r in read_existing(backend, [topic_name], infos=[info])] == [b"only"]
    assert time.monotonic() - t0 < 5.0
