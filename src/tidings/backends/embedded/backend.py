"""The embedded broker: a `Backend` on one SQLite file, shared safely by many processes."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from tidings.backends.base import ConsumerHandle, GroupInfo, RebalanceListener, TopicInfo
from tidings.backends.embedded import admin
from tidings.backends.embedded.changes import Changes
from tidings.backends.embedded.codec import encode_headers
from tidings.backends.embedded.consumer import EmbeddedConsumer
from tidings.backends.embedded.delays import DelayedRow, Delays
from tidings.backends.embedded.groups import Groups
from tidings.backends.embedded.log import Log, Row, TopicMeta
from tidings.backends.embedded.store import Store
from tidings.clock import SYSTEM_CLOCK, Clock
from tidings.exceptions import ConfigurationError, StorageError, TransactionAborted
from tidings.partitioner import partition_for
from tidings.records import (
    OutgoingRecord,
    RecordMetadata,
    Start,
    TopicPartition,
    TopicSpec,
)

logger = logging.getLogger(__name__)

DUE_REFRESH: Final = 0.05
"""Seconds between reads of the earliest due time (new delays from other processes)."""
RETENTION_INTERVAL: Final = 1.0
"""Seconds between retention passes in one process."""
MAINTENANCE_BACKOFF: Final = 1.0
"""Seconds maintenance rests after failing to write (a full disk), before trying again."""
RELEASE_BATCHES: Final = 5
"""Batches of due delays one produce or fetch moves at most (the rest: the next call)."""


class EmbeddedBackend:
    """A broker in a directory: topics, groups, offsets and delays in ``<path>/tidings.db``.

    Several processes may open the same directory and publish and consume at once; none of
    them is special. Maintenance (moving due delayed records, deleting records past their
    topic's retention) is done by whichever process produces or fetches, in small
    transactions, so it happens without any background thread.

    Args:
        path: the data directory (created if missing).
        url: the URL this backend was opened with (for messages and the CLI).
        synchronous: "NORMAL" (survives any process crash) or "FULL" (also power cuts).
        session_timeout: seconds without a heartbeat after which a member is expired.
        heartbeat_interval: seconds between a member's heartbeats (done inside `fetch`).
        max_page_count: cap on the file's pages (tests use it to simulate a full disk).
        read_only: open an existing store through SQLite's read-only mode, for commands
            that only look (nothing is created; writes are refused; no maintenance runs).
        clock: where timestamps, due times, heartbeats and retention read the time.
        replication, min_insync_replicas: accepted and ignored, like a topic's
            `replication` and `config`: one machine keeps one copy, so an App configured
            for a Kafka cluster runs unchanged on the embedded broker.

    Raises:
        StorageError: the directory is not writable or the file is not a tidings store.
        ConfigurationError: an option is out of range.
    """

    def __init__(
        self,
        path: Path,
        *,
        url: str,
        synchronous: str = "NORMAL",
        session_timeout: float = 6.0,
        heartbeat_interval: float = 1.0,
        max_page_count: int | None = None,
        read_only: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        replication: int | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        # Options may arrive as text (environment, URL); numbers are what is compared.
        session_timeout, heartbeat_interval = float(session_timeout), float(heartbeat_interval)
        if max_page_count is not None:
            max_page_count = int(max_page_count)
        if not 0 < heartbeat_interval < session_timeout:
            raise ConfigurationError(
                f"heartbeat_interval ({heartbeat_interval}) must be > 0 and below "
                f"session_timeout ({session_timeout}); e.g. 1.0 and 6.0."
            )
        self.url = url
        self.clock = clock
        self.session_timeout = session_timeout
        self.heartbeat_interval = heartbeat_interval
        self.read_only = read_only
        self.store = Store(
            Path(path),
            synchronous=synchronous,
            max_page_count=max_page_count,
            read_only=read_only,
        )
        self.changes = Changes(self.store.directory)
        """Wakes this process's idle consumers when the store changes (see `changes`)."""
        self.log = Log(self.store)
        self.delays = Delays(self.store, self.log)
        self.membership = Groups(self.store)
        self._due_lock = threading.Lock()
        self._next_due: float | None = None
        self._due_checked: float | None = None
        self._due_count = -1
        self._retention_at = 0.0
        self._maintaining = threading.Lock()
        self._partition_cache: dict[tuple[bytes, int], int] = {}
        self._warned_at = float("-inf")
        self._resting_until = float("-inf")

    @property
    def path(self) -> Path:
        """The database file."""
        return self.store.path

    # -- topics and produce ---------------------------------------------------------------

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the missing topics (atomically, safe when processes race); keep others."""
        for spec in specs:
            if spec.partitions is not None and spec.partitions < 1:
                raise ConfigurationError(
                    f"Topic {spec.name!r} needs at least 1 partition, not {spec.partitions}."
                )
        self.log.ensure(specs, self.clock.time())

    async def produce_async(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """`produce` in a worker thread: a SQLite commit blocks, the event loop must not."""
        import asyncio  # here, not at the top: CLI commands open this backend without a loop

        return await asyncio.to_thread(self.produce, records)

    def produce_stream(self, chunks: Iterable[Sequence[OutgoingRecord]]) -> list[RecordMetadata]:
        """Gather every chunk, then store them all in one transaction (all or none)."""
        return self.produce([record for chunk in chunks for record in chunk])

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Store `records` in one transaction: all are durable when this returns, or none.

        Raises:
            ConfigurationError: a record names a partition its topic does not have.
            StorageFull: the disk or `max_page_count` is full; nothing was stored.
            StorageError: the store cannot be written.
        """
        if not records:
            return []
        now = self.clock.time()
        if self._maintenance_due(now):
            with self.store.pooled() as conn:
                self.maintain(conn)
        rows, delayed, placed = self._place(records, now)
        with self.store.pooled() as conn, self.store.write(conn):
            # Stamp inside the write lock so timestamps never go backwards in a partition.
            offsets = iter(Log.append(conn, rows, self.clock.time()) if rows else ())
            if delayed:
                Delays.schedule(conn, delayed)
        self._stored(rows, delayed)
        return [
            RecordMetadata(topic, partition, -1 if held else next(offsets))
            for topic, partition, held in placed
        ]

    def produce_and_commit(
        self,
        conn: sqlite3.Connection,
        records: Sequence[OutgoingRecord],
        group: str,
        member: str,
        offsets: Mapping[TopicPartition, int],
    ) -> None:
        """Store `records` and commit `offsets` in one SQLite transaction (exactly once).

        Raises:
            TransactionAborted: `member` no longer owns one of the partitions (it was
                expired, or they were revoked); nothing was written.
            StorageFull, StorageError: as `produce`; nothing was written.
        """
        rows, delayed, _ = self._place(records, self.clock.time())
        with self.store.write(conn):
            lost = self.membership.not_owned(conn, group, member, list(offsets))
            if lost:
                raise TransactionAborted(
                    f"Member {member} of group {group!r} no longer owns "
                    + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in lost)
                    + "; its outputs and offsets were rolled back, and the new owner handles "
                    "those events."
                )
            if rows:
                Log.append(conn, rows, self.clock.time())
            if delayed:
                Delays.schedule(conn, delayed)
            self.membership.store_offsets(conn, group, member, offsets)
        self._stored(rows, delayed)

    def _stored(self, rows: Sequence[Row], delayed: Sequence[DelayedRow]) -> None:
        """After a write: count it for checkpoints, wake readers, note the next due time."""
        self.store.checkpointer.wrote(sum([len(row[2] or b"") for row in rows]))
        self.changes.notify()
        if delayed:
            with self._due_lock:
                first = min(d[0] for d in delayed)
                if self._next_due is None or first < self._next_due:
                    self._next_due = first

    def _place(
        self, records: Sequence[OutgoingRecord], now: float
    ) -> tuple[list[Row], list[DelayedRow], list[tuple[str, int, bool]]]:
        """Choose each record's partition; split them into rows now and rows due later.

        Raises:
            ConfigurationError: a record names a partition its topic does not have.
        """
        metas: dict[str, TopicMeta] = {}
        rows: list[Row] = []
        delayed: list[DelayedRow] = []
        placed: list[tuple[str, int, bool]] = []
        cache = self._partition_cache
        memo: dict[tuple[str, bytes], bytes] = {}
        # The fast publish path: keep per-record work to dict lookups and one encode.
        for rec in records:
            topic = rec.topic
            meta = metas.get(topic)
            if meta is None:
                meta = metas[topic] = self.log.get(topic)
            key = rec.key
            partition = rec.partition
            if partition is None:
                count = len(meta.pids)
                if key is None or count == 1:
                    partition = partition_for(key, count)
                else:
                    # murmur2 is pure Python and keys repeat (account ids): remember them.
                    partition = cache.get((key, count))
                    if partition is None:
                        if len(cache) > 100_000:
                            cache.clear()
                        partition = cache[(key, count)] = partition_for(key, count)
            elif not 0 <= partition < len(meta.pids):
                raise ConfigurationError(
                    f"Topic {topic!r} has {len(meta.pids)} partitions; partition {partition} "
                    "does not exist."
                )
            headers = encode_headers(rec.headers, memo) if rec.headers else None
            due = rec.deliver_at
            if due is not None and due > now:
                delayed.append((due, topic, partition, key, rec.value, headers))
                placed.append((topic, partition, True))
            else:
                rows.append((meta.pids[partition], key, rec.value, headers))
                placed.append((topic, partition, False))
        return rows, delayed, placed

    # -- maintenance ---------------------------------------------------------------------

    def delay_due(self, conn: sqlite3.Connection) -> bool:
        """Return whether some delayed record is due (re-reading the due time now and then)."""
        now = self.clock.time()
        if now < self._resting_until:
            return False  # the last release failed (full disk?): fetch must not spin on it
        count = self.changes.count
        with self._due_lock:
            checked = self._due_checked
            stale = checked is None or (
                now - checked >= DUE_REFRESH
                # With change reports, the store is re-read only after it changed.
                and (not self.changes.active or count != self._due_count or now - checked >= 1)
            )
            if not stale and not (self._next_due is not None and self._next_due <= now):
                return False
        due = Delays.next_due(conn)
        with self._due_lock:
            self._next_due, self._due_checked, self._due_count = due, now, count
        return due is not None and due <= now

    def _maintenance_due(self, now: float) -> bool:
        """Whether `maintain` may have work: a cheap check that needs no connection."""
        checked, due = self._due_checked, self._next_due
        return (
            checked is None
            or now - checked >= DUE_REFRESH
            or (due is not None and due <= now)
            or now >= self._retention_at
        )

    def due_in(self) -> float | None:
        """Seconds until the earliest delayed record known to this process is due, or None."""
        due = self._next_due
        return None if due is None else max(due - self.clock.time(), 0.0)

    def maintain(self, conn: sqlite3.Connection) -> bool:
        """Move due delayed records and apply retention, if it is time (cheap otherwise).

        Returns whether it wrote through `conn` (whose reader then cannot tell from
        ``PRAGMA data_version``, which only counts other connections' commits). A store
        that cannot be written (full disk) must not stop consumers from reading or
        producers from trying: the failure is logged and the work retried later.
        """
        if self.read_only or self.clock.time() < self._resting_until:
            return False
        if not self._maintaining.acquire(blocking=False):
            return False  # another thread of this process is at it
        wrote = False
        try:
            if self.delay_due(conn):
                wrote = self.delays.release(conn, self.clock.time(), batches=RELEASE_BATCHES) > 0
                with self._due_lock:
                    self._due_checked = None
            now = self.clock.time()
            if now >= self._retention_at:
                self._retention_at = now + RETENTION_INTERVAL
                wrote = self.log.enforce_retention(conn, now) > 0 or wrote
        except StorageError as exc:
            now = self.clock.time()
            self._resting_until = now + MAINTENANCE_BACKOFF
            if now - self._warned_at >= 60:
                self._warned_at = now
                logger.warning("Embedded broker maintenance failed (will retry): %s", exc)
        finally:
            self._maintaining.release()
        if wrote:
            self.changes.notify()
        return wrote

    def release_due(self) -> int:
        """Append every delayed record that is due now; return how many (for tests, CLI)."""
        moved = 0
        with self.store.pooled() as conn:
            while True:
                step = self.delays.release(conn, self.clock.time(), batches=RELEASE_BATCHES)
                moved += step
                if step == 0:
                    break
        with self._due_lock:
            self._due_checked = None
        return moved

    def next_due(self) -> float | None:
        """Return when the earliest pending delayed record is due, or None."""
        with self.store.pooled() as conn:
            return Delays.next_due(conn)

    def enforce_retention(self) -> int:
        """Delete records older than their topic's retention now; return how many."""
        with self.store.pooled() as conn:
            return self.log.enforce_retention(conn, self.clock.time())

    # -- consumers and admin -------------------------------------------------------------

    def open_consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str | None = None,
    ) -> ConsumerHandle:
        """Join `group` on `topics` (created if missing); see `Backend.open_consumer`.

        Member ids must be unique among live members; a reused id starts afresh.
        """
        if start not in ("earliest", "latest"):
            raise ConfigurationError(f"start must be 'earliest' or 'latest', not {start!r}.")
        return EmbeddedConsumer(
            self, group, topics, start=start, listener=listener,
            member_id=member_id or uuid.uuid4().hex[:12],
        )  # fmt: skip

    def topics(self) -> list[TopicInfo]:
        """Describe every topic, with its log start/end and pending delays (one snapshot)."""
        with self.store.pooled() as conn, self.store.snapshot(conn):
            return admin.describe_topics(conn, self.log)

    def groups(self, names: Collection[str] | None = None) -> list[GroupInfo]:
        """Describe every group (or those in `names`): live members, committed/end/owner
        per partition."""
        with self.store.pooled() as conn, self.store.snapshot(conn):
            return admin.describe_groups(conn, self.log, self.clock.time(), names)

    def reset_group(
        self, group: str, topic: str, to: str | float, *, dry_run: bool = False
    ) -> dict[TopicPartition, int]:
        """Move `group`'s offsets on `topic` (with `dry_run`, only say where to); refuses while
        the group has live members.

        Raises:
            ConfigurationError: the group has live members, or `to` is not understood.
        """
        now = self.clock.time()
        meta = self.log.get(topic)
        with self.store.pooled() as conn:
            return admin.reset_group(self.store, conn, meta, group, to, now, dry_run=dry_run)

    def close(self) -> None:
        """Close every connection (consumers should be closed first)."""
        self.changes.close()
        self.store.close()
