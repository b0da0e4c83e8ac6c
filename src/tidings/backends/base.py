"""The narrow seam between the runtime and a broker.

A backend is a handful of primitives: declare topics, produce (durably, optionally delayed),
open a group consumer (fetch, commit, pause/resume, rebalance callbacks) and admin queries.
Retries, dead letters, ordering, commit tracking and shutdown live once in the runtime.

Threading: `Backend.produce` and the admin methods are thread-safe. A `ConsumerHandle` is
used from one thread at a time (the runtime's poll thread); its `RebalanceListener`
callbacks are invoked from inside `fetch` on that thread.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tidings.records import OutgoingRecord, Record, RecordMetadata, Start, TopicPartition, TopicSpec


class RebalanceListener(Protocol):
    """Told about partition ownership changes, from inside `ConsumerHandle.fetch`."""

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions became ours; fetching starts at their committed offsets."""

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are being taken away; commit finished work for them now, synchronously."""


class ConsumerHandle(Protocol):
    """One group member (or, with group None, a reader of every partition)."""

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        """Return up to `max_records` records from assigned, unpaused partitions.

        Blocks up to `timeout` seconds when nothing is ready. Keeps group membership alive
        (heartbeats) even when every partition is paused, so callers must call it regularly.
        Records of one partition are returned in offset order, each exactly once per
        assignment (positions advance as records are returned).
        """

    def commit(self, offsets: Mapping[TopicPartition, int], *, sync: bool) -> None:
        """Commit the next offset to read for each partition (only offsets that were handled)."""

    def commit_transaction(
        self, records: Sequence[OutgoingRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Store `records` and commit `offsets` atomically: all of it, or none (exactly once).

        Readers (read_committed on Kafka) see the records only once this returns. A member
        that no longer owns one of the partitions, or was fenced by a newer instance of
        itself, commits nothing. Records due later (`deliver_at`) are held back as by
        `Backend.produce`.

        Raises:
            TransactionAborted: nothing was stored or committed; the caller rewinds to its
                last committed offsets and handles those records again.
        """

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop returning records from these partitions (membership stays)."""

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Return records from these partitions again, from where fetching stopped."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch `partition` from `offset` next (used to redeliver records not handled)."""

    def position(self, partition: TopicPartition) -> int | None:
        """Return the offset the next fetch of `partition` reads from (None: not known).

        It is past every record returned, and on Kafka also past transaction markers, which
        take offsets no reader ever sees: a reader at its end offset has read everything.
        """

    def assignment(self) -> list[TopicPartition]:
        """Return the partitions this member owns now."""

    def close(self) -> None:
        """Leave the group (revoking partitions through the listener) and release resources."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What `tidings topics list/describe` shows."""

    name: str
    partitions: int
    retention: float | None
    """Retention in seconds; None means unlimited or the broker default."""
    start_offsets: tuple[int, ...]
    end_offsets: tuple[int, ...]
    delayed_pending: int = 0
    next_due: float | None = None
    leaders: tuple[int, ...] = ()
    """Kafka only (empty elsewhere): the broker id leading each partition, -1 for none."""
    replicas: tuple[tuple[int, ...], ...] = ()
    """Kafka only: the broker ids holding each partition's replicas."""
    in_sync: tuple[tuple[int, ...], ...] = ()
    """Kafka only: the broker ids of each partition's in-sync replicas."""
    min_insync: int | None = None
    """Kafka only: the topic's min.insync.replicas (writes fail with fewer in sync)."""

    @property
    def under_replicated(self) -> tuple[int, ...]:
        """The partitions with fewer in-sync replicas than replicas."""
        return tuple(
            p
            for p, (r, i) in enumerate(zip(self.replicas, self.in_sync, strict=True))
            if len(i) < len(r)
        )


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """A group's position in one partition."""

    topic: str
    partition: int
    committed: int | None
    end: int
    member: str | None = None

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else 0)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group: its members and its position in each partition it has committed."""

    group: str
    state: str
    members: tuple[str, ...] = ()
    partitions: tuple[PartitionLag, ...] = field(default_factory=tuple)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


class Backend(Protocol):
    """A broker: the only thing the runtime, the publisher and the CLI talk to."""

    url: str

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that are missing; never change an existing one.

        Only this creates topics. A spec's stated settings are checked against an existing
        topic (see `tidings.topics`).

        Raises:
            ConfigurationError: an existing topic has another partition count, or (except
                on Kafka, which logs a warning) another retention than its spec states.
        """

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Store `records` durably and return where each went, in order.

        Records with `deliver_at` in the future are held back and appended to their topic
        when due (offset -1 in the result). Raises PublishError (or a subclass) naming
        every record that failed; never drops a record silently. A record for a topic that
        does not exist raises TopicNotFound (only `ensure_topics` creates topics).
        """

    async def produce_async(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """`produce` for the event loop: awaits durability without blocking the loop."""

    def produce_stream(self, chunks: Iterable[Sequence[OutgoingRecord]]) -> list[RecordMetadata]:
        """`produce` for records built chunk by chunk, in one call.

        A networked backend sends each chunk as soon as it has it, so the broker works while
        the caller builds the next; a local one may gather every chunk and store them at
        once. If taking a chunk raises, records already sent are awaited, then the error
        propagates (with a note when some were stored).
        """

    def open_consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str | None = None,
    ) -> ConsumerHandle:
        """Join `group` on `topics` (or, with group None, read all partitions from `start`)."""

    def topics(self) -> list[TopicInfo]:
        """Describe every (non-internal) topic."""

    def groups(self, names: Collection[str] | None = None) -> list[GroupInfo]:
        """Describe every consumer group (or only those in `names`) with its lag."""

    def reset_group(
        self, group: str, topic: str, to: str | float, *, dry_run: bool = False
    ) -> dict[TopicPartition, int]:
        """Move a group's committed offsets on `topic` to "earliest", "latest" or a time.

        The group must have no live members. Returns the new committed offsets. With
        `dry_run`, checks the same and returns the offsets it would commit, changing nothing.
        """

    def close(self) -> None:
        """Flush and release everything."""
