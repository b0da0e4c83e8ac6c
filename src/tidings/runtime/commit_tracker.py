"""Which offsets may be committed: only the contiguous prefix of finished ones.

Bookkeeping is per fetched run (the records of one partition in one fetch), not per
event: `track_runs` costs one object per run, and a finish marks one flag in its run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from operator import itemgetter

from tidings.records import Record, TopicPartition


class Partition:
    """The tracked state of one assignment (epoch) of a partition."""

    __slots__ = ("epoch", "gone", "live", "running", "runs", "tp", "uncommitted", "unfinished")

    def __init__(self, tp: TopicPartition, epoch: int) -> None:
        self.tp = tp
        self.epoch = epoch
        self.runs: deque[Run] = deque()
        self.unfinished = 0
        self.running = 0
        """Handlers running on this partition now (kept by the event loop thread)."""
        self.uncommitted: int | None = None
        self.live = True
        """False once a revocation began: start nothing new from this assignment."""
        self.gone = False
        """True once revoked: finishes from this assignment are ignored."""


class Run:
    """Records `records[start:start + size]` of one fetch, all of one partition.

    `done[i]` flags the finished ones; `head` is the first unfinished index, so everything
    before it is committable once every earlier run of the partition is done.
    """

    __slots__ = (
        "done",
        "fetched",
        "head",
        "left",
        "nbytes",
        "part",
        "records",
        "share",
        "size",
        "start",
    )

    def __init__(
        self, part: Partition, records: Sequence[Record], start: int, size: int, nbytes: int
    ) -> None:
        self.part = part
        self.records = records
        self.start = start
        self.size = size
        self.done = bytearray(size)
        self.head = 0
        self.left = size
        self.nbytes = nbytes
        self.share = nbytes // size if size else 0
        """Bytes released per finished event (the remainder with the last one)."""
        self.fetched = 0.0
        """`time.monotonic()` when the run was fetched (set by `track_runs`)."""

    def unreleased(self) -> int:
        """Bytes of this run still counted in flight."""
        return self.left * self.share + self.nbytes - self.share * self.size if self.left else 0

    @property
    def epoch(self) -> int:
        return self.part.epoch


_KEY = itemgetter(Record._fields.index("key"))  # Record is a NamedTuple
_VALUE = itemgetter(Record._fields.index("value"))


def _nbytes(records: Sequence[Record]) -> int:
    """Return the key and value bytes of `records` (C-level loops: once per event)."""
    return sum(map(len, filter(None, map(_VALUE, records)))) + sum(
        map(len, filter(None, map(_KEY, records)))
    )


class CommitTracker:
    """Tracks in-flight offsets per partition; thread-safe.

    Offsets of one partition are tracked in fetch order. Finishes may come in any order;
    the committable position only advances over a contiguous run of finished offsets, so a
    slow event holds back the commit (never skipped), while later ones may finish first.
    Each assignment of a partition has an epoch: finishing an offset from an older epoch
    (work that outlived a revocation) is ignored.

    In-flight bytes are released as events finish: each takes its run's average size.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TopicPartition, Partition] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._in_flight = 0
        self._bytes = 0

    def epoch(self, tp: TopicPartition) -> int:
        return self._epochs.get(tp, 0)

    def track_runs(self, records: Sequence[Record]) -> list[Run]:
        """Start tracking fetched records; return them split into runs of one partition."""
        runs: list[Run] = []
        n = len(records)
        if not n:
            return runs
        now = time.monotonic()
        with self._lock:
            parts = self._parts
            start = 0
            while start < n:
                first = records[start]
                topic, partition = first.topic, first.partition
                end = start + 1
                while end < n:
                    rec = records[end]
                    if rec.partition != partition or rec.topic != topic:
                        break
                    end += 1
                tp = TopicPartition(topic, partition)
                part = parts.get(tp)
                if part is None:
                    part = parts[tp] = Partition(tp, self._epochs.get(tp, 0))
                nbytes = _nbytes(records[start:end] if start or end < n else records)
                run = Run(part, records, start, end - start, nbytes)
                run.fetched = now
                part.runs.append(run)
                part.unfinished += run.size
                self._bytes += nbytes
                runs.append(run)
                start = end
            self._in_flight += n
        return runs

    def track(self, records: Sequence[Record]) -> list[int]:
        """Start tracking fetched records; return each one's epoch."""
        return [run.part.epoch for run in self.track_runs(records) for _ in range(run.size)]

    def finish_at(self, run: Run, index: int) -> None:
        """Mark `run`'s record number `index` handled (or dead-lettered, or skipped)."""
        with self._lock:
            part = run.part
            done = run.done
            if part.gone or done[index]:
                return  # revoked meanwhile (or finished twice)
            done[index] = 1
            part.unfinished -= 1
            self._in_flight -= 1
            run.left -= 1
            # An event's share of the run's bytes goes as it finishes: one slow event must
            # not hold a whole fetch's bytes against the group's max_in_flight_bytes.
            self._bytes -= run.share if run.left else run.nbytes - run.share * (run.size - 1)
            if index != run.head:
                return
            head, size = index + 1, run.size
            while head < size and done[head]:
                head += 1
            run.head = head
            runs = part.runs
            if runs[0] is not run:
                return
            while True:
                if run.head:
                    part.uncommitted = run.records[run.start + run.head - 1].offset + 1
                if run.head < run.size:
                    return
                runs.popleft()
                if not runs:
                    return
                run = runs[0]

    def finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """Mark one offset handled, by partition and offset (the slow way)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.epoch != epoch:
                return
            found = [
                (run, i)
                for run in part.runs
                for i in range(run.size)
                if run.records[run.start + i].offset == offset
            ]
        for run, i in found[:1]:
            self.finish_at(run, i)

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

    def stop_starting(self, tps: Iterable[TopicPartition]) -> None:
        """A revocation begins: work of `tps` not started yet must not start."""
        with self._lock:
            for tp in tps:
                part = self._parts.get(tp)
                if part is not None:
                    part.live = False

    def running(self, tps: Iterable[TopicPartition]) -> int:
        """Return how many handlers run on `tps` now."""
        parts = self._parts
        return sum(p.running for p in (parts.get(tp) for tp in tps) if p is not None)

    def revoke(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Stop tracking `tps` (a new epoch starts); return their last committable offsets."""
        tps = list(tps)
        out = self.take_committable(tps)
        with self._lock:
            for tp in tps:
                part = self._parts.pop(tp, None)
                if part is not None:
                    part.live = False
                    part.gone = True
                    self._in_flight -= part.unfinished
                    self._bytes -= sum(run.unreleased() for run in part.runs)
                self._epochs[tp] = self._epochs.get(tp, 0) + 1
        return out

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Return how many fetched events are not finished (in one partition, or in all)."""
        with self._lock:
            if tp is None:
                return self._in_flight
            part = self._parts.get(tp)
            return 0 if part is None else part.unfinished

    def heads(self) -> list[tuple[Partition, Record, float]]:
        """Return each partition's oldest unfinished record and when it was fetched.

        For status reports: the record that holds back the partition's commit, with its
        `time.monotonic()` fetch time. Partitions with nothing unfinished are left out.
        """
        out: list[tuple[Partition, Record, float]] = []
        with self._lock:
            for part in self._parts.values():
                if not part.unfinished or not part.runs:
                    continue
                run = part.runs[0]
                if run.head < run.size:
                    out.append((part, run.records[run.start + run.head], run.fetched))
        return out

    def in_flight_bytes(self) -> int:
        """Return the key and value bytes of fetched runs that are not finished."""
        return self._bytes

    def in_flight_by_partition(self) -> dict[TopicPartition, int]:
        with self._lock:
            return {tp: p.unfinished for tp, p in self._parts.items()}

    def is_current(self, tp: TopicPartition, epoch: int) -> bool:
        """Return whether work fetched in `epoch` still belongs to this process."""
        return self._epochs.get(tp, 0) == epoch
