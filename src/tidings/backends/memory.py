"""In-process reference backend: the seam's semantics in plain Python, for fast tests.

It implements groups the way the embedded backend does: members join, a target assignment
is computed (range over sorted partitions and members), and a partition moves only after
its previous owner has revoked it at its next fetch, so at most one member handles a
partition at any moment. Nothing survives the process.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from tidings.backends.base import (
    ConsumerHandle,
    GroupInfo,
    PartitionLag,
    RebalanceListener,
    TopicInfo,
)
from tidings.clock import SYSTEM_CLOCK, Clock
from tidings.exceptions import ConfigurationError, TopicNotFound, TransactionAborted
from tidings.partitioner import partition_for
from tidings.records import (
    OutgoingRecord,
    Record,
    RecordMetadata,
    Start,
    TopicPartition,
    TopicSpec,
)
from tidings.topics import check_declaration


@dataclass
class _Topic:
    spec: TopicSpec
    logs: list[list[Record]]


def _seconds(spec: TopicSpec) -> float | None:
    return spec.retention.total_seconds() if spec.retention else None


@dataclass
class _Group:
    members: dict[str, _MemberConsumer] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    owners: dict[TopicPartition, str] = field(default_factory=dict)
    target: dict[str, set[TopicPartition]] = field(default_factory=dict)


class MemoryBackend:
    """A broker that lives in this process; `memory://NAME` URLs share one per name."""

    _named: ClassVar[dict[str, MemoryBackend]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, url: str = "memory://", clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._delayed: list[tuple[float, int, OutgoingRecord]] = []
        self._seq = itertools.count()

    @classmethod
    def named(cls, name: str) -> MemoryBackend:
        """Return the process-wide backend called `name`, creating it on first use."""
        with cls._named_lock:
            if name not in cls._named:
                cls._named[name] = cls(url=f"memory://{name}")
            return cls._named[name]

    # -- topics and produce ------------------------------------------------------------

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the missing topics; raise ConfigurationError if one conflicts (unchanged)."""
        with self._lock:
            for spec in specs:
                if spec.name not in self._topics:
                    count = spec.partitions_or_default
                    created = TopicSpec(spec.name, count, spec.retention)
                    self._topics[spec.name] = _Topic(created, [[] for _ in range(count)])
            for group in self._groups.values():
                self._rebalance(group)
            for spec in specs:
                topic = self._topics[spec.name]
                check_declaration(spec, self.url, len(topic.logs), _seconds(topic.spec))

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise TopicNotFound(name, self.url)
        return topic

    async def produce_async(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """`produce`: storing in memory never blocks."""
        return self.produce(records)

    def produce_stream(self, chunks: Iterable[Sequence[OutgoingRecord]]) -> list[RecordMetadata]:
        """Gather every chunk, then store them all at once (all or none)."""
        return self.produce([record for chunk in chunks for record in chunk])

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        with self._lock:
            return self._produce_locked(records)

    def _produce_locked(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Store `records` (the caller holds the lock): all of them, or none on an error."""
        for rec in records:  # check first: a refused record must leave nothing behind
            count = len(self._topic(rec.topic).logs)
            if rec.partition is not None and not 0 <= rec.partition < count:
                raise ConfigurationError(
                    f"Topic {rec.topic!r} has {count} partitions; partition {rec.partition} "
                    "does not exist."
                )
        out: list[RecordMetadata] = []
        now = self.clock.time()
        for rec in records:
            topic = self._topic(rec.topic)
            count = len(topic.logs)
            partition = (
                rec.partition if rec.partition is not None else partition_for(rec.key, count)
            )
            if rec.deliver_at is not None and rec.deliver_at > now:
                fixed = OutgoingRecord(
                    rec.topic, rec.key, rec.value, rec.headers, partition, rec.deliver_at
                )
                heapq.heappush(self._delayed, (rec.deliver_at, next(self._seq), fixed))
                out.append(RecordMetadata(rec.topic, partition, -1))
                continue
            out.append(self._append(topic, partition, rec, now))
        self._changed.notify_all()
        return out

    def _append(
        self, topic: _Topic, partition: int, rec: OutgoingRecord, now: float
    ) -> RecordMetadata:
        log = topic.logs[partition]
        offset = len(log)
        log.append(Record(rec.topic, partition, offset, rec.key, rec.value, rec.headers, now))
        return RecordMetadata(rec.topic, partition, offset)

    def release_due(self) -> int:
        """Append delayed records that are due; return how many."""
        moved = 0
        with self._lock:
            now = self.clock.time()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, rec = heapq.heappop(self._delayed)
                assert rec.partition is not None
                self._append(self._topic(rec.topic), rec.partition, rec, now)
                moved += 1
            if moved:
                self._changed.notify_all()
        return moved

    def next_due(self) -> float | None:
        with self._lock:
            return self._delayed[0][0] if self._delayed else None

    # -- consumers ---------------------------------------------------------------------

    def open_consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str | None = None,
    ) -> ConsumerHandle:
        with self._lock:
            for name in topics:
                self._topic(name)
            member = _MemberConsumer(
                self, group, list(topics), start, listener, member_id or uuid.uuid4().hex[:12]
            )
            if group is not None:
                state = self._groups.setdefault(group, _Group())
                state.members[member.member_id] = member
                self._rebalance(state)
            return member

    def _partitions_of(self, topics: Sequence[str]) -> list[TopicPartition]:
        return [
            TopicPartition(name, p)
            for name in sorted(set(topics))
            for p in range(len(self._topics[name].logs))
        ]

    def _rebalance(self, group: _Group) -> None:
        """Compute the target assignment: partitions spread evenly over sorted members."""
        group.target = {m: set() for m in group.members}
        members = sorted(group.members)
        if not members:
            return
        subscribed: set[str] = set()
        for m in group.members.values():
            subscribed.update(m.topics)
        for i, tp in enumerate(self._partitions_of(sorted(subscribed))):
            candidates = [m for m in members if tp.topic in group.members[m].topics]
            if candidates:
                group.target[candidates[i % len(candidates)]].add(tp)
        self._changed.notify_all()

    def _leave(self, member: _MemberConsumer) -> None:
        if member.group is None:
            return
        group = self._groups[member.group]
        group.members.pop(member.member_id, None)
        for tp in [tp for tp, owner in group.owners.items() if owner == member.member_id]:
            del group.owners[tp]
        self._rebalance(group)

    # -- admin -------------------------------------------------------------------------

    def topics(self) -> list[TopicInfo]:
        with self._lock:
            pending: dict[str, list[float]] = {}
            for due, _, rec in self._delayed:
                pending.setdefault(rec.topic, []).append(due)
            return [
                TopicInfo(
                    name=t.spec.name,
                    partitions=len(t.logs),
                    retention=_seconds(t.spec),
                    start_offsets=tuple(0 for _ in t.logs),
                    end_offsets=tuple(len(log) for log in t.logs),
                    delayed_pending=len(pending.get(t.spec.name, [])),
                    next_due=min(pending[t.spec.name]) if t.spec.name in pending else None,
                )
                for t in sorted(self._topics.values(), key=lambda t: t.spec.name)
            ]

    def groups(self, names: Collection[str] | None = None) -> list[GroupInfo]:
        with self._lock:
            out = []
            for name, g in sorted(self._groups.items()):
                if names is not None and name not in names:
                    continue
                tps = set(g.committed)
                for m in g.members.values():
                    tps.update(self._partitions_of(m.topics))
                lags = tuple(
                    PartitionLag(
                        tp.topic,
                        tp.partition,
                        g.committed.get(tp),
                        len(self._topics[tp.topic].logs[tp.partition]),
                        g.owners.get(tp),
                    )
                    for tp in sorted(tps)
                )
                state = "Stable" if g.members else "Empty"
                out.append(GroupInfo(name, state, tuple(sorted(g.members)), lags))
            return out

    def reset_group(
        self, group: str, topic: str, to: str | float, *, dry_run: bool = False
    ) -> dict[TopicPartition, int]:
        with self._lock:
            g = self._groups.get(group) or _Group()
            if g.members:
                raise ConfigurationError(
                    f"Group {group!r} has {len(g.members)} live member(s); stop its workers "
                    "before resetting offsets."
                )
            result: dict[TopicPartition, int] = {}
            for p, log in enumerate(self._topic(topic).logs):
                if to == "earliest":
                    offset = 0
                elif to == "latest":
                    offset = len(log)
                else:
                    offset = next((r.offset for r in log if r.timestamp >= float(to)), len(log))
                result[TopicPartition(topic, p)] = offset
            if not dry_run:
                self._groups.setdefault(group, g).committed.update(result)
            return result

    def close(self) -> None:
        return None


class _MemberConsumer:
    def __init__(
        self,
        backend: MemoryBackend,
        group: str | None,
        topics: list[str],
        start: Start,
        listener: RebalanceListener | None,
        member_id: str,
    ) -> None:
        self.backend = backend
        self.group = group
        self.topics = topics
        self.start = start
        self.listener = listener
        self.member_id = member_id
        self.owned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.closed = False

    def _sync_assignment(self) -> None:
        b = self.backend
        if self.group is None:
            gained = [tp for tp in b._partitions_of(self.topics) if tp not in self.owned]
            for tp in gained:
                self.owned.add(tp)
                log = b._topics[tp.topic].logs[tp.partition]
                self.positions[tp] = 0 if self.start == "earliest" else len(log)
            if gained and self.listener:
                self.listener.on_assigned(gained)
            return
        group = b._groups[self.group]
        target = group.target.get(self.member_id, set())
        lost = sorted(self.owned - target)
        if lost:
            if self.listener:
                self.listener.on_revoked(lost)
            for tp in lost:
                self.owned.discard(tp)
                self.positions.pop(tp, None)
                self.paused.discard(tp)
                if group.owners.get(tp) == self.member_id:
                    del group.owners[tp]
            b._changed.notify_all()
        gained = sorted(tp for tp in target - self.owned if tp not in group.owners)
        for tp in gained:
            group.owners[tp] = self.member_id
            self.owned.add(tp)
            committed = group.committed.get(tp)
            if committed is None:
                log = b._topics[tp.topic].logs[tp.partition]
                committed = 0 if self.start == "earliest" else len(log)
            self.positions[tp] = committed
        if gained and self.listener:
            self.listener.on_assigned(gained)

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        b = self.backend
        deadline = b.clock.monotonic() + timeout
        b.release_due()
        with b._lock:
            while True:
                if self.closed:
                    return []
                self._sync_assignment()
                out: list[Record] = []
                for tp in sorted(self.owned - self.paused):
                    log = b._topics[tp.topic].logs[tp.partition]
                    pos = self.positions[tp]
                    take = log[pos : pos + (max_records - len(out))]
                    if take:
                        out.extend(take)
                        self.positions[tp] = pos + len(take)
                    if len(out) >= max_records:
                        break
                if out:
                    return out
                remaining = deadline - b.clock.monotonic()
                if remaining <= 0:
                    return []
                due = b._delayed[0][0] - b.clock.time() if b._delayed else remaining
                b._changed.wait(max(0.0, min(remaining, due, 0.05)))
                if b._delayed:
                    b.release_due()

    def commit(self, offsets: Mapping[TopicPartition, int], *, sync: bool) -> None:
        if self.group is None:
            return
        with self.backend._lock:
            group = self.backend._groups[self.group]
            for tp, offset in offsets.items():
                # A commit for a partition we no longer own would overwrite the new owner's.
                if group.owners.get(tp) == self.member_id:
                    group.committed[tp] = offset

    def commit_transaction(
        self, records: Sequence[OutgoingRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Store `records` and commit `offsets` under the backend's lock: all, or none."""
        with self.backend._lock:
            group = self.backend._groups.get(self.group) if self.group is not None else None
            lost = [tp for tp in offsets if group is None or group.owners.get(tp) != self.member_id]
            if self.closed or lost:
                raise TransactionAborted(
                    f"Consumer {self.member_id} of group {self.group!r} no longer owns "
                    f"{_names(lost) or 'its partitions'}; nothing of the transaction was "
                    "stored. Its records are handled again by their owner."
                )
            self.backend._produce_locked(records)
            assert group is not None
            group.committed.update(offsets)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        with self.backend._lock:
            self.paused.update(p for p in partitions if p in self.owned)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        with self.backend._lock:
            self.paused.difference_update(partitions)
            self.backend._changed.notify_all()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        with self.backend._lock:
            if partition in self.owned:
                self.positions[partition] = offset

    def position(self, partition: TopicPartition) -> int | None:
        with self.backend._lock:
            return self.positions.get(partition)

    def assignment(self) -> list[TopicPartition]:
        with self.backend._lock:
            return sorted(self.owned)

    def close(self) -> None:
        with self.backend._lock:
            if self.closed:
                return
            if self.owned and self.listener:
                self.listener.on_revoked(sorted(self.owned))
            self.closed = True
            self.owned.clear()
            self.backend._leave(self)


def _names(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps)
