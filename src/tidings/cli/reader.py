"""Read topics without joining a consumer group (for `tail` and `dlq`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from tidings.backends.base import Backend, TopicInfo
from tidings.records import Record, Start, TopicPartition

BATCH = 500
IDLE_LIMIT = 10.0
"""Seconds without a record after which `read_existing` gives up on the rest of its window.

It only matters when a backend's last offset sits below its end offset and its position
does not tell (Kafka transaction markers are told by the position); normally the window
is complete long before.
"""


def read_existing(
    backend: Backend,
    topics: Sequence[str],
    *,
    last: int | None = None,
    infos: Sequence[TopicInfo] | None = None,
) -> Iterator[Record]:
    """Yield the records the topics hold now, oldest first per partition, then stop.

    With `last`, only the last `last` records of each partition. Records appended while
    reading (after the end offsets seen at the start) are not included. `infos` are the
    topics' descriptions if the caller has them (else `backend.topics()` is asked).
    """
    wanted = set(topics)
    floor: dict[TopicPartition, int] = {}
    end: dict[TopicPartition, int] = {}
    for info in backend.topics() if infos is None else infos:
        if info.name not in wanted:
            continue
        for p, (s, e) in enumerate(zip(info.start_offsets, info.end_offsets, strict=True)):
            tp = TopicPartition(info.name, p)
            floor[tp] = s if last is None else max(s, e - last)
            end[tp] = e
    pending = {tp for tp in end if floor[tp] < end[tp]}
    if not pending:
        return
    handle = backend.open_consumer(None, sorted(wanted), start="earliest", listener=None)
    seeked: set[TopicPartition] = set()
    try:
        quiet_since = time.monotonic()
        while pending and time.monotonic() - quiet_since < IDLE_LIMIT:
            records = handle.fetch(BATCH, 0.5)
            finished: list[TopicPartition] = []
            if records:
                quiet_since = time.monotonic()
            else:  # ended by a transaction marker? the position has passed it then
                for tp in sorted(pending):
                    at = handle.position(tp)
                    if at is not None and at >= end[tp]:
                        pending.discard(tp)
                        finished.append(tp)
            for record in records:
                tp = record.tp
                if tp not in pending:
                    continue
                if record.offset < floor[tp]:
                    if tp not in seeked:
                        # Skip straight to the window instead of reading the whole log.
                        handle.seek(tp, floor[tp])
                        seeked.add(tp)
                    continue
                if record.offset < end[tp]:
                    yield record
                if record.offset + 1 >= end[tp]:
                    pending.discard(tp)
                    finished.append(tp)
            if finished:
                handle.pause(finished)
    finally:
        handle.close()


def follow(backend: Backend, topics: Sequence[str], *, start: Start) -> Iterator[Record]:
    """Yield records from `start` onwards, forever (until the caller stops iterating)."""
    handle = backend.open_consumer(None, list(topics), start=start, listener=None)
    try:
        while True:
            yield from handle.fetch(BATCH, 1.0)
    finally:
        handle.close()
