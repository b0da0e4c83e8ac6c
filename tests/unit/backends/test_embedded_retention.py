"""Embedded retention: old records are deleted by time, and readers resume at the log start."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from tidings.backends.embedded import EmbeddedBackend
from tidings.backends.embedded.log import RETENTION_BATCH
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec
from tidings.testing import FakeClock

HOUR = 3600.0


def setup(tmp_path: Path) -> tuple[EmbeddedBackend, FakeClock]:
    clock = FakeClock()
    b = EmbeddedBackend(tmp_path, url="embedded://test", clock=clock)
    b.ensure_topics([TopicSpec("t", partitions=2, retention=timedelta(hours=1)),
                     TopicSpec("forever", partitions=1)])  # fmt: skip
    return b, clock


def produce(b: EmbeddedBackend, topic: str, n: int) -> None:
    b.produce([OutgoingRecord(topic, None, b"x", partition=i % 2 if topic == "t" else 0)
               for i in range(n)])  # fmt: skip


def test_records_past_retention_are_deleted_and_start_offsets_move(tmp_path: Path) -> None:
    b, clock = setup(tmp_path)
    produce(b, "t", 10)
    produce(b, "forever", 3)
    clock.advance(0.5 * HOUR)
    produce(b, "t", 4)
    clock.advance(0.6 * HOUR)  # the first 10 are now 1.1 h old, the last 4 only 0.6 h
    assert b.enforce_retention() == 10
    info = {t.name: t for t in b.topics()}
    assert info["t"].start_offsets == (5, 5) and info["t"].end_offsets == (7, 7)
    assert info["forever"].start_offsets == (0,)
    assert b.enforce_retention() == 0  # nothing left to do: a cheap pass
    b.close()


def test_a_reader_behind_the_log_start_resumes_there(tmp_path: Path) -> None:
    b, clock = setup(tmp_path)
    produce(b, "t", 6)
    consumer = b.open_consumer("g", ["t"], start="earliest", listener=None)
    assert len(consumer.fetch(2, 0)) == 2
    consumer.commit({TopicPartition("t", 0): 1, TopicPartition("t", 1): 1}, sync=True)
    consumer.close()
    clock.advance(2 * HOUR)
    produce(b, "t", 2)
    b.enforce_retention()
    consumer = b.open_consumer("g", ["t"], start="earliest", listener=None)
    assert sorted((r.partition, r.offset) for r in consumer.fetch(10, 0)) == [(0, 3), (1, 3)]
    consumer.close()
    b.close()


def test_producers_and_fetchers_apply_retention_as_they_go(tmp_path: Path) -> None:
    b, clock = setup(tmp_path)
    produce(b, "t", 4)
    clock.advance(2 * HOUR)
    produce(b, "t", 2)  # the producer's maintenance pass deletes the 4 old ones
    assert next(t for t in b.topics() if t.name == "t").start_offsets == (2, 2)
    b.close()


def test_a_large_backlog_is_deleted_in_bounded_passes(tmp_path: Path) -> None:
    b, clock = setup(tmp_path)
    b.ensure_topics([TopicSpec("big", retention=timedelta(hours=1))])
    n = RETENTION_BATCH + 100
    for start in range(0, n, 10_000):
        b.produce([OutgoingRecord("big", None, b"") for _ in range(min(10_000, n - start))])
    clock.advance(2 * HOUR)
    assert b.enforce_retention() == RETENTION_BATCH
    assert b.enforce_retention() == 100
    big = next(t for t in b.topics() if t.name == "big")
    assert big.start_offsets == big.end_offsets == (n,)
    b.close()


def test_reset_to_a_time_finds_the_first_record_at_or_after_it(tmp_path: Path) -> None:
    b, clock = setup(tmp_path)
    produce(b, "forever", 3)
    clock.advance(10)
    when = clock.time()
    produce(b, "forever", 2)
    assert b.reset_group("g", "forever", when) == {TopicPartition("forever", 0): 3}
    assert b.reset_group("g", "forever", when + 1) == {TopicPartition("forever", 0): 5}
    b.close()


def test_a_group_whose_committed_offset_retention_passed_resumes_at_the_log_start_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, clock = setup(tmp_path)
    produce(b, "forever", 0)
    b.produce([OutgoingRecord("t", None, b"old", partition=0) for _ in range(5)])
    c = b.open_consumer("g", ["t"], start="latest", listener=None)
    c.fetch(10, 0)  # joins: latest is offset 5 of partition 0
    c.commit({TopicPartition("t", 0): 2}, sync=True)  # as if it had handled 0 and 1
    c.close()
    clock.advance(0.5 * HOUR)
    b.produce([OutgoingRecord("t", None, b"new", partition=0) for _ in range(3)])
    clock.advance(0.6 * HOUR)
    assert b.enforce_retention() == 5  # offsets 2..4 went before the group read them
    c = b.open_consumer("g", ["t"], start="latest", listener=None)
    with caplog.at_level(logging.WARNING):
        got = c.fetch(10, 0)
    assert [(r.partition, r.offset) for r in got] == [(0, 5), (0, 6), (0, 7)]
    assert "t[0]" in caplog.text and "retention" in caplog.text and "2 to 4" in caplog.text
    c.close()

    # A new group starting at the earliest retained offset is told nothing.
    caplog.clear()
    fresh = b.open_consumer("h", ["t"], start="earliest", listener=None)
    with caplog.at_level(logging.WARNING):
        assert [r.offset for r in fresh.fetch(10, 0)] == [5, 6, 7]
    assert "retention" not in caplog.text
    fresh.close()
    b.close()


def test_start_latest_applies_once_a_partition_without_commit_is_read_from_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, _clock = setup(tmp_path)
    c = b.open_consumer("g", ["t"], start="latest", listener=None)
    c.fetch(10, 0)
    c.commit({TopicPartition("t", 0): 0}, sync=True)  # partition 1: never committed
    c.close()
    b.produce([OutgoingRecord("t", None, b"x", partition=p) for p in (0, 1, 1)])
    c = b.open_consumer("g", ["t"], start="latest", listener=None)
    with caplog.at_level(logging.WARNING):
        got = c.fetch(10, 0)
    assert sorted((r.partition, r.offset) for r in got) == [(0, 0), (1, 0), (1, 1)]
    assert "t[1] has no committed offset" in caplog.text
    c.close()
    b.close()
