"""Which offsets may be committed: only the contiguous prefix of finished ones."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from tidings.records import Record, TopicPartition


class _Partition:
    __slots__ = ("done", "epoch", "pending", "sizes", "uncommitted")

    def __init__(self, epoch: int) -> None:
        self.pending: deque[int] = deque()
        self.sizes: dict[int, int] = {}
        self.done: set[int] = set()
        self.uncommitted: int | None = None
        self.epoch = epoch


class CommitTracker:
    """Tracks in-flight offsets per partition; thread-safe.

    Offsets of one partition are tracked in fetch order. `finish` may come in any order;
    the committable position only advances over a contiguous run of finished offsets, so a
    slow event holds back the commit (never skipped), while later ones may finish first.
    Each assignment of a partition has an epoch: finishing an offset from an older epoch
    (work that outlived a revocation) is ignored.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TopicPartition, _Partition] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._in_flight = 0
        self._bytes = 0

    def epoch(self, tp: TopicPartition) -> int:
        return self._epochs.get(tp, 0)

    def track(self, records: Sequence[Record]) -> list[int]:
        """Start tracking fetched records; return each one's epoch."""
        epochs: list[int] = []
        with self._lock:
            for rec in records:
                tp = TopicPartition(rec.topic, rec.partition)
                part = self._parts.get(tp)
                if part is None:
                    part = self._parts[tp] = _Partition(self._epochs.get(tp, 0))
                part.pending.append(rec.offset)
                size = len(rec.value or b"") + len(rec.key or b"")
                part.sizes[rec.offset] = size
                self._bytes += size
                epochs.append(part.epoch)
            self._in_flight += len(records)
        return epochs

    def finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """Mark one offset handled (or dead-lettered, or skipped)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.epoch != epoch:
                return
            part.done.add(offset)
            self._in_flight -= 1
            self._bytes -= part.sizes.pop(offset, 0)
            pending, done = part.pending, part.done
            while pending and pending[0] in done:
                head = pending.popleft()
                done.discard(head)
                part.uncommitted = head + 1

    def take_committable(
        self, only: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Return next-offsets that advanced since the last call, and forget them."""
        out: dict[TopicPartition, int] = {}
        with self._lock:
            keys = list(self._parts) if only is None else [tp for tp in only if tp in self._parts]
            for tp in keys:
                part = self._parts[tp]
                if part.uncommitted is not None:
                    out[tp] = part.uncommitted
                    part.uncommitted = None
        return out

    def revoke(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Stop tracking `tps` (a new epoch starts); return their last committable offsets."""
        tps = list(tps)
        out = self.take_committable(tps)
        with self._lock:
            for tp in tps:
                part = self._parts.pop(tp, None)
                if part is not None:
                    self._in_flight -= len(part.pending) - len(part.done)
                    self._bytes -= sum(part.sizes.values())
                self._epochs[tp] = self._epochs.get(tp, 0) + 1
        return out

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Return how many fetched events are not finished (in one partition, or in all)."""
        with self._lock:
            if tp is None:
                return self._in_flight
            part = self._parts.get(tp)
            return 0 if part is None else len(part.pending) - len(part.done)

    def in_flight_bytes(self) -> int:
        """Return the key and value bytes of fetched events that are not finished."""
        return self._bytes

    def in_flight_by_partition(self) -> dict[TopicPartition, int]:
        with self._lock:
            return {tp: len(p.pending) - len(p.done) for tp, p in self._parts.items()}

    def is_current(self, tp: TopicPartition, epoch: int) -> bool:
        """Return whether work fetched in `epoch` still belongs to this process."""
        return self._epochs.get(tp, 0) == epoch
