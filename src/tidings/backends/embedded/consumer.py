"""A group member (or an all-partitions reader) of the embedded broker.

Everything happens inside `fetch`, on the caller's thread: the heartbeat (at most every
``heartbeat_interval``), expiring stale members, revoking partitions that the target
assignment gives to someone else, claiming freed ones, releasing due delays and reading.
While nothing is there, `fetch` polls ``PRAGMA data_version`` (a read of the WAL index,
microseconds) with millisecond sleeps, so a record committed by any process is seen within
a few milliseconds.

A full store (disk or `max_page_count`) never ends the consumer: reading goes on, and
heartbeats, group changes and commits that cannot be written are reported (once per
``FULL_REPORT_INTERVAL``) and tried again later; once space returns they go through (a
member whose session ran out meanwhile rejoins).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from tidings.backends.base import RebalanceListener
from tidings.backends.embedded.groups import GroupView, target
from tidings.backends.embedded.log import Log, TopicMeta
from tidings.exceptions import StorageError, StorageFull, TransactionAborted
from tidings.records import OutgoingRecord, Record, Start, TopicPartition

if TYPE_CHECKING:
    from tidings.backends.embedded.backend import EmbeddedBackend

POLL_MIN: Final = 0.001
POLL_MAX: Final = 0.008
"""Idle polling backs off from 1 ms to 8 ms: latency stays low, idle CPU stays tiny."""
FULL_REPORT_INTERVAL: Final = 30.0
"""Seconds between two warnings that the store is full (while it stays full)."""
FULL_RETRY: Final = 0.5
"""Seconds a member waits before writing its group changes again on a full store."""

logger = logging.getLogger("tidings.embedded")


class EmbeddedConsumer:
    """A `ConsumerHandle` on the embedded store; see `tidings.backends.base`.

    `commit` is always synchronous (one small transaction) whatever `sync` says.
    """

    def __init__(
        self,
        backend: EmbeddedBackend,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str,
    ) -> None:
        self._b = backend
        self.group = group
        self.member_id = member_id
        self.start = start
        self.listener = listener
        now = backend.clock.time()
        self._metas: dict[str, TopicMeta] = {t: backend.log.get(t) for t in topics}
        self._conn = backend.store.connect()
        self.owned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.closed = False
        self._epoch = -1
        # Heartbeat cadence runs on the monotonic clock (a wall-clock step must not stop
        # heartbeats); the stored heartbeat is wall time, which every process shares.
        self._last_heartbeat = backend.clock.monotonic()
        self._rotation = 0
        self._version = -1
        """`PRAGMA data_version` when the store was last looked at."""
        self._dirty = True
        """Whether reading may find something (positions moved, or the store changed)."""
        self._full_since: float | None = None
        self._full_reported = float("-inf")
        self._group_retry_at = float("-inf")
        if group is not None:
            with backend.store.errors("join the group in"):
                self._join(now)

    # -- group protocol ------------------------------------------------------------------

    def _join(self, now: float) -> None:
        assert self.group is not None
        b = self._b
        b.membership.join(self._conn, self.group, self.member_id, list(self._metas),
                      b.session_timeout, now)  # fmt: skip
        self._last_heartbeat = b.clock.monotonic()
        self._epoch = -1
        self._dirty = True

    def _drop(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            self.owned.discard(tp)
            self.positions.pop(tp, None)
            self.paused.discard(tp)

    def _lose_everything(self) -> None:
        """We were expired: our partitions already belong to others; say so, then rejoin."""
        lost = sorted(self.owned)
        if lost and self.listener:
            self.listener.on_revoked(lost)  # its commits are ignored: we own nothing now
        self._drop(lost)
        self._join(self._b.clock.time())

    def _sync_group(self) -> None:
        assert self.group is not None
        b, conn, group, me = self._b, self._conn, self.group, self.member_id
        tick = b.clock.monotonic()
        if tick - self._last_heartbeat >= b.heartbeat_interval:
            self._last_heartbeat = tick  # also when it fails: retried at the next beat
            alive = b.membership.heartbeat(conn, group, me, b.clock.time())
            self._dirty = True  # it may have expired others: look at the epoch
            if not alive:
                self._lose_everything()
        if not self._dirty or b.membership.epoch(conn, group) == self._epoch:
            return
        view = b.membership.view(conn, group)
        if me not in view.members:  # expired by another member since our last heartbeat
            self._lose_everything()
            view = b.membership.view(conn, group)
        # Remember the epoch only once the rebalance went through: if a listener raises,
        # the next fetch tries again instead of believing it is up to date.
        self._rebalance(view)
        self._epoch = view.epoch

    def _rebalance(self, view: GroupView) -> None:
        """Revoke what the target gives others, then claim what it gives us and is free."""
        assert self.group is not None
        b, conn, group, me = self._b, self._conn, self.group, self.member_id
        counts = {name: meta.partitions for name, meta in self._metas.items()}
        for topics in view.members.values():
            for name in topics:
                if name not in counts:
                    meta = b.log.lookup(conn, name)
                    counts[name] = meta.partitions if meta else 0
        mine = target(view.members, counts).get(me, set())
        held = {tp for tp, owner in view.owners.items() if owner == me}
        lost = sorted(self.owned - (mine & held))
        if lost:
            if self.listener:
                self.listener.on_revoked(lost)  # the owner commits here, before letting go
            b.membership.release(conn, group, me, lost)
            self._drop(lost)
        wanted = sorted(tp for tp in mine - self.owned if view.owners.get(tp) in (None, me))
        if not wanted:
            return
        claimed = b.membership.claim(conn, group, me, wanted)
        if claimed is None:  # expired between the view and the claim: next fetch rejoins
            self._lose_everything()
            return
        self._dirty = True
        for tp, committed in claimed.items():
            self.owned.add(tp)
            self.positions[tp] = committed if committed is not None else self._initial(tp)
            if committed is None and self.start == "latest" and self._read_before(tp.topic):
                # "start applies once": the group read this topic before, so this
                # partition's events are not older than its start; read them all.
                self.positions[tp] = Log.bounds(conn, self._metas[tp.topic])[tp.partition][0]
                logger.warning(
                    "group %s: %s[%d] has no committed offset although the group has read "
                    "%s before; reading it from the earliest offset, %d.",
                    group, tp.topic, tp.partition, tp.topic, self.positions[tp],
                )  # fmt: skip
        if claimed and self.listener:
            self.listener.on_assigned(sorted(claimed))

    def _read_before(self, topic: str) -> bool:
        """Whether the group committed an offset on any partition of `topic`."""
        row = self._conn.execute(
            "SELECT 1 FROM offsets WHERE grp = ? AND topic = ? LIMIT 1", (self.group, topic)
        ).fetchone()
        return row is not None

    def _initial(self, tp: TopicPartition) -> int:
        start, end = Log.bounds(self._conn, self._metas[tp.topic])[tp.partition]
        return start if self.start == "earliest" else end

    def _sync_reader(self) -> None:
        gained = [
            TopicPartition(name, p)
            for name in sorted(self._metas)
            for p in range(self._metas[name].partitions)
            if TopicPartition(name, p) not in self.owned
        ]
        for tp in gained:
            self.owned.add(tp)
            self.positions[tp] = self._initial(tp)
            self._dirty = True
        if gained and self.listener:
            self.listener.on_assigned(gained)

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        """Return up to `max_records` records; see `ConsumerHandle.fetch`.

        The timeout is measured on the real monotonic clock: it bounds a wait for other
        processes, which an injected test clock cannot speed up.
        """
        with self._b.store.errors("read"):
            return self._fetch(max_records, timeout)

    def _fetch(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self.closed:
            # Nothing to look at unless another connection committed (data_version), this
            # one wrote (maintenance, a heartbeat) or positions changed here (`_dirty`).
            if self._b.maintain(self._conn):
                self._dirty = True
            seen = self._b.changes.count  # before data_version: no change falls in between
            version = self._data_version()
            if version != self._version:
                self._version, self._dirty = version, True
            if self.group is None:
                self._sync_reader()
            elif time.monotonic() >= self._group_retry_at:
                try:
                    self._sync_group()
                    self._space_back()
                except StorageFull as exc:
                    self._group_retry_at = time.monotonic() + FULL_RETRY
                    self._full(exc, "heartbeats and group changes")
            records: list[Record] = []
            if self._dirty:
                self._dirty = False
                records = self._read(max_records)
                if len(records) >= max_records:
                    self._dirty = True  # more may be waiting
            if records or time.monotonic() >= deadline:
                return records
            self._wait(version, seen, deadline)
        return []

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _read(self, max_records: int) -> list[Record]:
        ready = sorted(self.owned - self.paused)
        if not ready:
            return []
        # Start at a different partition each time so a busy one cannot starve the rest.
        self._rotation = (self._rotation + 1) % len(ready)
        out: list[Record] = []
        for tp in ready[self._rotation :] + ready[: self._rotation]:
            records = Log.read(
                self._conn, self._metas[tp.topic], tp.partition, self.positions[tp],
                max_records - len(out),
            )  # fmt: skip
            if records:
                if records[0].offset > self.positions[tp] and self.group is not None:
                    self._skipped(tp, records[0].offset)
                out.extend(records)
                self.positions[tp] = records[-1].offset + 1
                if len(out) >= max_records:
                    break
        return out

    def _skipped(self, tp: TopicPartition, first: int) -> None:
        """Say that retention deleted records of `tp` before this group read them."""
        logger.warning(
            "group %s: %s[%d] offsets %d to %d were deleted by retention before the group "
            "read them; reading on from %d, the earliest retained offset.",
            self.group, tp.topic, tp.partition, self.positions[tp], first - 1, first,
        )  # fmt: skip

    def _wait(self, version: int, seen: int, deadline: float) -> None:
        """Sleep until another connection commits, a delay or heartbeat is due, or deadline.

        Woken by `Changes` (inotify) where it is active; otherwise polls with sleeps
        backing off from POLL_MIN to POLL_MAX.
        """
        b = self._b
        changes = b.changes
        if changes.start():
            self._wait_for_change(version, seen, deadline)
            return
        pause = POLL_MIN
        heartbeat_due = self._last_heartbeat + b.heartbeat_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, POLL_MAX)
            if self._data_version() != version:
                return
            if self.group is not None and b.clock.monotonic() >= heartbeat_due:
                return
            if b.delay_due(self._conn):
                return

    def _wait_for_change(self, version: int, seen: int, deadline: float) -> None:
        b, changes = self._b, self._b.changes
        while changes.active:
            wake = deadline
            if self.group is not None:
                beat = self._last_heartbeat + b.heartbeat_interval - b.clock.monotonic()
                wake = min(wake, time.monotonic() + max(beat, 0.0))
            due_in = b.due_in()
            if due_in is not None:
                wake = min(wake, time.monotonic() + due_in)
            left = wake - time.monotonic()
            if left <= 0:
                return
            changes.wait(seen, left)
            if changes.count == seen:
                return  # nothing changed: it is time for the heartbeat, a delay or the end
            seen = changes.count
            if self._data_version() != version:
                return

    # -- the rest of the handle ----------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int], *, sync: bool) -> None:
        """Commit `offsets` for the partitions this member still owns (others are ignored)."""
        if self.group is None or self.closed:
            return
        mine = {tp: offset for tp, offset in offsets.items() if tp in self.owned}
        if mine:
            try:
                with self._b.store.errors("commit offsets in"):
                    self._b.membership.commit(self._conn, self.group, self.member_id, mine)
            except StorageFull as exc:  # the runtime sends its positions again, every 2 s
                self._full(exc, "commits")
                return
            self._space_back()

    def commit_transaction(
        self, records: Sequence[OutgoingRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Store `records` and commit `offsets` in one SQLite transaction (see the seam).

        Raises:
            TransactionAborted: this member no longer owns a partition of `offsets`, or the
                store could not be written; nothing was written.
        """
        if self.group is None or self.closed:
            raise TransactionAborted(
                f"Consumer {self.member_id} is closed or not in a group; it commits nothing."
            )
        try:
            with self._b.store.errors("write a transaction in"):
                self._b.produce_and_commit(self._conn, records, self.group, self.member_id,
                                           offsets)  # fmt: skip
        except StorageError as exc:
            raise TransactionAborted(
                f"Consumer {self.member_id} of group {self.group!r} could not write its "
                f"transaction: {exc} Nothing was written; the events are handled again."
            ) from exc

    def _full(self, exc: StorageFull, what: str) -> None:
        """Report that `what` cannot be written (at most every FULL_REPORT_INTERVAL)."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        if now - self._full_reported >= FULL_REPORT_INTERVAL:
            self._full_reported = now
            logger.warning(
                "Consumer %s of group %s: %s wait for space: %s Reading goes on; they are "
                "retried until the store accepts writes again.",
                self.member_id, self.group, what, exc,
            )  # fmt: skip

    def _space_back(self) -> None:
        if self._full_since is not None:
            logger.warning(
                "Consumer %s of group %s: the store accepts writes again after %.1f s.",
                self.member_id, self.group, time.monotonic() - self._full_since,
            )  # fmt: skip
            self._full_since = None
            self._full_reported = float("-inf")

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self.paused.update(tp for tp in partitions if tp in self.owned)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self.paused.difference_update(partitions)
        self._dirty = True

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition in self.owned:
            self.positions[partition] = offset
            self._dirty = True

    def position(self, partition: TopicPartition) -> int | None:
        return self.positions.get(partition)

    def assignment(self) -> list[TopicPartition]:
        return sorted(self.owned)

    def close(self) -> None:
        """Revoke through the listener, leave the group so others take over, disconnect."""
        if self.closed:
            return
        try:
            if self.owned and self.listener:
                self.listener.on_revoked(sorted(self.owned))
            self.closed = True
            self._drop(sorted(self.owned))
            if self.group is not None:
                try:
                    with self._b.store.errors("leave the group in"):
                        self._b.membership.leave(self._conn, self.group, self.member_id)
                except StorageFull as exc:  # the others take over when our session runs out
                    self._full(exc, "leaving the group")
        finally:
            self.closed = True
            self._b.store.discard(self._conn)
