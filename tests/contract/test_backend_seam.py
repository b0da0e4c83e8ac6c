"""The backend seam, behaviour by behaviour, on every backend (memory, embedded, Kafka).

These tests talk to `tidings.backends.base` only, through `open_backend(url)`: whatever
passes here is what the runtime may rely on. Waits poll with deadlines (generous, for
Kafka's rebalances); no assertion depends on how long something took.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, cast

import pytest

from tidings.backends.base import Backend, ConsumerHandle, TopicInfo
from tidings.backends.registry import open_backend
from tidings.exceptions import ConfigurationError, TopicNotFound
from tidings.partitioner import murmur2
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec

DEADLINE = 30.0
"""Seconds a wait may take before the test fails (Kafka group joins take a few)."""


class Tracking:
    """A backend that closes, at teardown, every consumer a failed test left open.

    On a shared Kafka broker a member left behind would stall the next rebalance of its
    group for a whole session timeout.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.opened: list[ConsumerHandle] = []

    def open_consumer(self, *args: Any, **kwargs: Any) -> ConsumerHandle:
        consumer = self.inner.open_consumer(*args, **kwargs)
        self.opened.append(consumer)
        return consumer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        for consumer in self.opened:
            with contextlib.suppress(Exception):
                consumer.close()
        self.inner.close()


@pytest.fixture
def backend(broker_url: str) -> Iterator[Backend]:
    b = Tracking(open_backend(broker_url))
    yield cast(Backend, b)
    b.close()


@pytest.fixture
def group(topic_name: str) -> str:
    """A group name no other test uses (Kafka groups span topics)."""
    return f"{topic_name}-g"


class Listener:
    """Records rebalance callbacks; optionally commits on revoke, as the runtime does."""

    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.revoked: list[TopicPartition] = []
        self.on_revoke: Callable[[Sequence[TopicPartition]], None] | None = None

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.assigned.extend(partitions)

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.revoked.extend(partitions)
        if self.on_revoke is not None:
            self.on_revoke(partitions)


def out(
    topic: str,
    key: str | None,
    value: str,
    *,
    partition: int | None = None,
    deliver_at: float | None = None,
) -> OutgoingRecord:
    encoded = key.encode() if key is not None else None
    return OutgoingRecord(
        topic, encoded, value.encode(), partition=partition, deliver_at=deliver_at
    )


def fetch_n(consumer: ConsumerHandle, n: int, deadline: float = DEADLINE) -> list[Record]:
    """Fetch until `n` records arrived (fails on timeout); returns exactly what came."""
    got: list[Record] = []
    end = time.monotonic() + deadline
    while len(got) < n:
        assert time.monotonic() < end, f"got {len(got)} of {n} records before the deadline"
        got.extend(consumer.fetch(n - len(got), 0.2))
    return got


def settle(
    consumers: Sequence[ConsumerHandle], done: Callable[[], bool], deadline: float = DEADLINE
) -> None:
    """Keep every consumer fetching (that is where rebalances happen) until `done()`."""
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "the group did not settle before the deadline"
        for c in consumers:
            c.fetch(100, 0.05)


def topic_info(backend: Backend, name: str) -> TopicInfo:
    return next(t for t in backend.topics() if t.name == name)


def committed(backend: Backend, group: str, topic: str) -> dict[int, int | None]:
    for g in backend.groups():
        if g.group == group:
            return {p.partition: p.committed for p in g.partitions if p.topic == topic}
    return {}


# -- produce and fetch ---------------------------------------------------------------------


def test_fetch_returns_each_partition_in_produce_order(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=3)])
    sent = [out(topic_name, f"k{i % 5}", f"v{i}") for i in range(40)]
    meta = backend.produce(sent)
    assert [m.topic for m in meta] == [topic_name] * 40
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    got = fetch_n(consumer, 40)
    consumer.close()
    by_partition: dict[int, list[Record]] = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r)
    for p, records in by_partition.items():
        assert [r.offset for r in records] == sorted(r.offset for r in records)
        expected = [
            (m.offset, s.value) for m, s in zip(meta, sent, strict=True) if m.partition == p
        ]
        assert [(r.offset, r.value) for r in records] == expected
    assert sorted(r.value or b"" for r in got) == sorted(s.value or b"" for s in sent)


def test_keys_map_to_kafkas_murmur2_partitions(backend: Backend, topic_name: str) -> None:
    # Kafka's own test vectors for Utils.murmur2 (org.apache.kafka.common.utils.UtilsTest).
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    backend.ensure_topics([TopicSpec(topic_name, partitions=7)])
    keys = [b"21", b"foobar", b"abc", b"account-42", b"a-little-bit-long-string"]
    meta = backend.produce([OutgoingRecord(topic_name, k, b"x") for k in keys])
    assert [m.partition for m in meta] == [(murmur2(k) & 0x7FFFFFFF) % 7 for k in keys]


def test_headers_keys_and_values_round_trip(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    headers = (("ce_id", b"1"), ("bin", bytes(range(256))), ("ce_id", b"2"), ("empty", b""))
    backend.produce(
        [
            OutgoingRecord(topic_name, b"k", b"v", headers),
            OutgoingRecord(topic_name, None, None),
            OutgoingRecord(topic_name, "ключ".encode(), b""),
        ]
    )
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    first, second, third = fetch_n(consumer, 3)
    consumer.close()
    assert first.headers == headers and first.header("ce_id") == b"2"
    assert (first.key, first.value) == (b"k", b"v")
    assert (second.key, second.value, second.headers) == (None, None, ())
    assert (third.key, third.value) == ("ключ".encode(), b"")
    assert first.timestamp > 0


def test_producing_to_a_missing_topic_raises_and_creates_nothing(
    backend: Backend, topic_name: str
) -> None:
    for deliver_at in (None, time.time() + 3600):
        with pytest.raises(TopicNotFound, match=f"Topic '{topic_name}' does not exist"):
            backend.produce([out(topic_name, "a", "1", deliver_at=deliver_at)])
    assert topic_name not in {t.name for t in backend.topics()}


def test_a_topic_declared_without_partitions_is_created_with_one(
    backend: Backend, topic_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    meta = backend.produce([out(topic_name, "a", "1"), out(topic_name, "b", "2")])
    assert [(m.partition, m.offset) for m in meta] == [(0, 0), (0, 1)]
    info = topic_info(backend, topic_name)
    assert info.partitions == 1 and info.end_offsets == (2,)
    backend.ensure_topics([TopicSpec(topic_name)])  # states nothing: accepts what exists


def test_ensure_topics_refuses_another_partition_count(backend: Backend, topic_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    with pytest.raises(ConfigurationError, match="declared with partitions=3") as caught:
        backend.ensure_topics([TopicSpec(topic_name, partitions=3)])
    assert "has partitions=2" in str(caught.value)
    assert f"tidings topics describe {topic_name}" in str(caught.value)
    assert topic_info(backend, topic_name).partitions == 2


def test_ensure_topics_is_idempotent_and_keeps_existing(backend: Backend, topic_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    backend.ensure_topics([TopicSpec(topic_name, partitions=2), TopicSpec(topic_name, 2)])
    assert topic_info(backend, topic_name).partitions == 2


def test_explicit_partition_that_does_not_exist_is_refused(
    backend: Backend, topic_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    ok = backend.produce([out(topic_name, "k", "v", partition=1)])
    assert ok[0].partition == 1
    with pytest.raises(ConfigurationError):
        backend.produce([out(topic_name, "k", "v", partition=2)])


# -- groups and offsets --------------------------------------------------------------------


def test_committed_offsets_survive_a_restart(broker_url: str, topic_name: str, group: str) -> None:
    first = open_backend(broker_url)
    first.ensure_topics([TopicSpec(topic_name)])
    first.produce([out(topic_name, "k", f"v{i}") for i in range(10)])
    consumer = first.open_consumer(group, [topic_name], start="earliest", listener=None)
    assert len(fetch_n(consumer, 10)) == 10
    consumer.commit({TopicPartition(topic_name, 0): 6}, sync=True)
    consumer.close()
    first.close()

    second = open_backend(broker_url)
    consumer = second.open_consumer(group, [topic_name], start="earliest", listener=None)
    resumed = fetch_n(consumer, 4)
    assert [r.offset for r in resumed] == [6, 7, 8, 9]
    assert committed(second, group, topic_name) == {0: 6}
    consumer.close()
    second.close()


def test_new_group_starts_from_start(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([out(topic_name, "k", "old")])
    latest = backend.open_consumer(f"{group}-late", [topic_name], start="latest", listener=None)
    earliest = backend.open_consumer(
        f"{group}-early", [topic_name], start="earliest", listener=None
    )
    # Kafka settles "latest" lazily, when fetching starts: keep producing until it reads.
    got: list[Record] = []
    end = time.monotonic() + DEADLINE
    while not got:
        assert time.monotonic() < end, "the latest reader never received anything"
        backend.produce([out(topic_name, "k", "new")])
        got = latest.fetch(100, 0.2)
    assert {r.value for r in got} == {b"new"}
    first, second = fetch_n(earliest, 2)
    assert (first.value, second.value) == (b"old", b"new")
    latest.close()
    earliest.close()


def test_two_members_split_partitions_and_a_closed_members_move(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=4)])
    everything = {TopicPartition(topic_name, p) for p in range(4)}
    l1, l2 = Listener(), Listener()
    m1 = backend.open_consumer(group, [topic_name], start="earliest", listener=l1)
    m2 = backend.open_consumer(group, [topic_name], start="earliest", listener=l2)

    def split() -> bool:
        a, b = set(m1.assignment()), set(m2.assignment())
        return bool(a) and bool(b) and not a & b and a | b == everything

    settle([m1, m2], split)
    assert set(l2.assigned) >= set(m2.assignment())
    owned_by_m1 = set(m1.assignment())
    m1.close()
    assert set(l1.revoked) >= owned_by_m1
    settle([m2], lambda: set(m2.assignment()) == everything)
    assert m1.fetch(10, 0) == []
    m2.close()


def test_each_record_goes_to_one_member_at_a_time(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=3)])
    backend.produce([out(topic_name, f"k{i}", str(i)) for i in range(30)])
    members = [
        backend.open_consumer(group, [topic_name], start="earliest", listener=None)
        for _ in range(2)
    ]
    seen: list[Record] = []
    done = {TopicPartition(topic_name, p) for p in range(3)}

    end = time.monotonic() + DEADLINE
    while len(seen) < 30:
        assert time.monotonic() < end
        for m in members:
            batch = m.fetch(100, 0.05)
            seen.extend(batch)
            last: dict[TopicPartition, int] = {}
            for r in batch:
                last[r.tp] = r.offset + 1
            m.commit(last, sync=True)
    # A partition may only be re-read after a rebalance from its committed offset, which
    # was committed right after handling: no record is seen twice here.
    assert sorted(int(r.value or b"-1") for r in seen) == list(range(30))
    assert {r.tp for r in seen} <= done
    for m in members:
        m.close()


def test_a_revoked_members_commit_is_ignored(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    backend.produce([out(topic_name, None, str(i), partition=i % 2) for i in range(20)])
    m1 = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    settle([m1], lambda: len(m1.assignment()) == 2)
    m2 = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    settle([m1, m2], lambda: len(m1.assignment()) == 1 and len(m2.assignment()) == 1)
    moved = m2.assignment()[0]
    m2.commit({moved: 5}, sync=True)
    m1.commit({moved: 9}, sync=True)  # stale: m1 gave this partition up
    assert committed(backend, group, topic_name)[moved.partition] == 5
    m1.close()
    m2.close()


def test_revocation_lets_the_owner_commit_before_the_partition_moves(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    backend.produce([out(topic_name, None, str(i), partition=i % 2) for i in range(10)])
    l1 = Listener()
    m1 = backend.open_consumer(group, [topic_name], start="earliest", listener=l1)
    handled: dict[TopicPartition, int] = {}
    for r in fetch_n(m1, 10):
        handled[r.tp] = r.offset + 1
    l1.on_revoke = lambda tps: m1.commit({tp: handled[tp] for tp in tps}, sync=True)
    m2 = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    settle([m1, m2], lambda: len(m2.assignment()) == 1)
    assert l1.revoked == m2.assignment()
    # The new owner starts after what m1 handled: nothing left to read.
    assert m2.fetch(10, 0.1) == []
    m1.close()
    m2.close()


def test_pause_and_resume(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    p0, p1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    settle([consumer], lambda: len(consumer.assignment()) == 2)
    consumer.pause([p0])
    backend.produce(
        [out(topic_name, None, "a", partition=0), out(topic_name, None, "b", partition=1)]
    )
    assert [r.value for r in fetch_n(consumer, 1)] == [b"b"]
    assert consumer.fetch(10, 0.1) == []
    assert consumer.assignment() == [p0, p1]  # paused partitions stay ours
    consumer.resume([p0])
    assert [r.value for r in fetch_n(consumer, 1)] == [b"a"]
    consumer.close()


def test_seek_redelivers_from_an_offset(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([out(topic_name, "k", str(i)) for i in range(5)])
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    assert len(fetch_n(consumer, 5)) == 5
    consumer.seek(TopicPartition(topic_name, 0), 2)
    assert [r.offset for r in fetch_n(consumer, 3)] == [2, 3, 4]
    consumer.close()


def test_reader_without_group_sees_all_partitions(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=3)])
    backend.produce([out(topic_name, f"k{i}", str(i)) for i in range(9)])
    reader = backend.open_consumer(None, [topic_name], start="earliest", listener=None)
    assert len(fetch_n(reader, 9)) == 9
    assert len(reader.assignment()) == 3
    reader.close()
    assert all(g.group is not None for g in backend.groups())


def test_groups_report_lag(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([out(topic_name, "k", str(i)) for i in range(8)])
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    fetch_n(consumer, 8)
    consumer.commit({TopicPartition(topic_name, 0): 3}, sync=True)
    info = next(g for g in backend.groups() if g.group == group)
    (part,) = [p for p in info.partitions if p.topic == topic_name]
    assert (part.committed, part.end, part.lag) == (3, 8, 5)
    consumer.close()


def test_reset_group(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([out(topic_name, "k", str(i)) for i in range(6)])
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    fetch_n(consumer, 6)
    consumer.commit({TopicPartition(topic_name, 0): 6}, sync=True)
    with pytest.raises(ConfigurationError, match=group):
        backend.reset_group(group, topic_name, "earliest")
    consumer.close()

    start = topic_info(backend, topic_name).start_offsets[0]
    assert backend.reset_group(group, topic_name, "earliest") == {
        TopicPartition(topic_name, 0): start
    }
    consumer = backend.open_consumer(group, [topic_name], start="latest", listener=None)
    assert [r.offset for r in fetch_n(consumer, 6)] == list(range(6))
    consumer.close()
    assert backend.reset_group(group, topic_name, "latest") == {TopicPartition(topic_name, 0): 6}
    assert committed(backend, group, topic_name) == {0: 6}


def test_reset_group_dry_run_changes_nothing(backend: Backend, topic_name: str, group: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    backend.produce([out(topic_name, "k", str(i)) for i in range(4)])
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    fetch_n(consumer, 4)
    consumer.commit({TopicPartition(topic_name, 0): 3}, sync=True)
    with pytest.raises(ConfigurationError, match=group):
        backend.reset_group(group, topic_name, "earliest", dry_run=True)
    consumer.close()

    start = topic_info(backend, topic_name).start_offsets[0]
    planned = backend.reset_group(group, topic_name, "earliest", dry_run=True)
    assert planned == {TopicPartition(topic_name, 0): start}
    assert backend.reset_group(group, topic_name, "latest", dry_run=True) == {
        TopicPartition(topic_name, 0): 4
    }
    assert committed(backend, group, topic_name) == {0: 3}
    fresh = f"{group}-never-committed"
    assert backend.reset_group(fresh, topic_name, "latest", dry_run=True)
    assert fresh not in {g.group for g in backend.groups()}


# -- delays and retention ------------------------------------------------------------------


def test_delayed_record_is_not_early_and_arrives(
    backend: Backend, topic_name: str, group: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    due = time.time() + 2.0  # listing topics below takes a while on a broker with many
    (meta,) = backend.produce([out(topic_name, "k", "later", deliver_at=due)])
    assert meta.offset == -1 and meta.topic == topic_name
    info = topic_info(backend, topic_name)
    assert info.delayed_pending == 1 and info.next_due == pytest.approx(due)
    consumer = backend.open_consumer(group, [topic_name], start="earliest", listener=None)
    (record,) = fetch_n(consumer, 1)
    assert time.time() >= due, "a delayed record was delivered before its due time"
    assert (record.key, record.value, record.partition) == (b"k", b"later", meta.partition)
    assert topic_info(backend, topic_name).delayed_pending == 0
    consumer.close()


def test_record_due_in_the_past_is_appended_at_once(backend: Backend, topic_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    (meta,) = backend.produce([out(topic_name, "k", "now", deliver_at=time.time() - 1)])
    assert meta.offset == 0


def test_retention_is_reported_and_recent_records_are_kept(
    backend: Backend, topic_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name, retention=timedelta(hours=2))])
    backend.produce([out(topic_name, "k", str(i)) for i in range(3)])
    info = topic_info(backend, topic_name)
    assert info.retention == 7200
    assert info.start_offsets == (0,) and info.end_offsets == (3,)
