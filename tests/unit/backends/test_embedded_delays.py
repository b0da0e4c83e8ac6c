"""Embedded delayed delivery: exactly once under races, bounded memory, nothing lost."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

from tidings.backends.embedded import EmbeddedBackend
from tidings.backends.embedded.backend import RELEASE_BATCHES
from tidings.backends.embedded.delays import RELEASE_BATCH
from tidings.records import OutgoingRecord, TopicSpec
from tidings.testing import FakeClock


def open_at(path: Path, clock: FakeClock) -> EmbeddedBackend:
    return EmbeddedBackend(path, url=f"embedded://{path}", clock=clock)


def test_a_due_record_keeps_its_key_value_headers_and_partition(tmp_path: Path) -> None:
    clock = FakeClock()
    b = open_at(tmp_path, clock)
    b.ensure_topics([TopicSpec("t", partitions=3)])
    headers = (("ce_type", b"Reminder"), ("x", b"\x00\xff"))
    (meta,) = b.produce([OutgoingRecord("t", b"acct-7", b"{}", headers, None, clock.time() + 60)])
    reader = b.open_consumer(None, ["t"], start="earliest", listener=None)
    assert reader.fetch(10, 0) == []
    clock.advance(59.9)
    assert reader.fetch(10, 0) == []  # never early
    clock.advance(0.2)
    (record,) = reader.fetch(10, 0)
    assert (record.key, record.value, record.headers) == (b"acct-7", b"{}", headers)
    assert (record.partition, record.offset) == (meta.partition, 0)
    assert record.timestamp == clock.time()
    reader.close()
    b.close()


def test_topics_report_pending_and_next_due(tmp_path: Path) -> None:
    clock = FakeClock()
    b = open_at(tmp_path, clock)
    b.ensure_topics([TopicSpec("a"), TopicSpec("b")])
    now = clock.time()
    b.produce(
        [
            OutgoingRecord("a", None, b"1", deliver_at=now + 30),
            OutgoingRecord("a", None, b"2", deliver_at=now + 10),
            OutgoingRecord("b", None, b"3", deliver_at=now + 20),
        ]
    )
    info = {t.name: (t.delayed_pending, t.next_due) for t in b.topics()}
    assert info == {"a": (2, now + 10), "b": (1, now + 20)}
    assert b.next_due() == now + 10
    clock.advance(15)
    assert b.release_due() == 1
    assert {t.name: t.delayed_pending for t in b.topics()} == {"a": 1, "b": 1}
    b.close()


def test_racing_processes_release_each_due_record_exactly_once(tmp_path: Path) -> None:
    clock = FakeClock()
    n = 3 * RELEASE_BATCH + 17
    setup = open_at(tmp_path, clock)
    setup.ensure_topics([TopicSpec("t", partitions=2)])
    setup.produce([OutgoingRecord("t", None, str(i).encode(), deliver_at=clock.time() + 5)
                   for i in range(n)])  # fmt: skip
    clock.advance(10)
    # Separate backends on one file race like separate processes: no shared Python lock.
    racers = [open_at(tmp_path, clock) for _ in range(4)]
    moved = [0] * len(racers)

    def race(i: int) -> None:
        moved[i] = racers[i].release_due()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(moved) == n
    reader = setup.open_consumer(None, ["t"], start="earliest", listener=None)
    values: list[bytes] = []
    while batch := reader.fetch(1000, 0):
        values.extend(r.value or b"" for r in batch)
    assert sorted(int(v) for v in values) == list(range(n))
    reader.close()
    for b in [setup, *racers]:
        b.close()


def test_many_pending_delays_are_never_loaded_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    b = open_at(tmp_path, clock)
    b.ensure_topics([TopicSpec("t")])
    value = b"v" * 100
    pending = 100_000
    for start in range(0, pending, 20_000):
        b.produce([OutgoingRecord("t", None, value, deliver_at=clock.time() + 60 + i % 7)
                   for i in range(start, start + 20_000)])  # fmt: skip
    (info,) = b.topics()  # counted in SQL
    assert info.delayed_pending == pending
    clock.advance(3600)  # now every one of them is due
    reader = b.open_consumer(None, ["t"], start="earliest", listener=None)
    # Loading every pending record at once would take over 30 MB of Python objects.
    tracemalloc.start()
    try:
        reader.fetch(10, 0)  # one fetch moves a bounded share of them
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, f"peak {peak} bytes"
    (info,) = b.topics()
    assert info.end_offsets == (RELEASE_BATCHES * RELEASE_BATCH,)
    assert info.delayed_pending == pending - RELEASE_BATCHES * RELEASE_BATCH
    reader.close()
    b.close()
