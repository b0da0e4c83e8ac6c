"""Topics and their partition logs: declare, append, read and expire by retention.

A partition is a row of ``partitions`` (its id ``pid``, its log start and next offset); its
records are the ``records`` rows whose rowid lies in ``[pid << 40, (pid + 1) << 40)``, the
offset being the low 40 bits. Offsets of a partition are contiguous from ``start_offset`` to
``next_offset - 1``: an append takes the next offsets inside the writer's transaction, and
retention only ever removes a prefix.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tidings.backends.embedded.codec import decode_headers, read_headers
from tidings.backends.embedded.schema import OFFSET_BITS
from tidings.backends.embedded.store import Store
from tidings.exceptions import TopicNotFound
from tidings.records import Record, TopicSpec
from tidings.topics import check_declaration

OFFSET_SPAN: Final = 1 << OFFSET_BITS
RETENTION_BATCH: Final = 20_000
"""Most records one retention pass deletes (keeps write locks and stalls short)."""


@dataclass(frozen=True, slots=True)
class TopicMeta:
    """What never changes about a topic once it exists: its partitions and retention."""

    name: str
    pids: tuple[int, ...]
    """The store's partition id of each partition, by partition number."""
    retention: float | None

    @property
    def partitions(self) -> int:
        return len(self.pids)


Row = tuple[int, bytes | None, bytes | None, bytes | None]
"""A record to append: (pid, key, value, encoded headers)."""


class Log:
    """The topic catalogue (cached: a topic's shape never changes) and the partition logs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._topics: dict[str, TopicMeta] = {}
        self._lock = threading.Lock()

    # -- topics --------------------------------------------------------------------------

    def ensure(self, specs: Sequence[TopicSpec], now: float) -> None:
        """Create the topics that do not exist yet, in one transaction; keep the others.

        Raises:
            ConfigurationError: a spec states partitions or a retention its existing topic
                does not have (checked after creating, so two processes racing agree).
        """
        missing = [s for s in specs if s.name not in self._topics]
        if missing:
            with self.store.pooled() as conn, self.store.write(conn):
                for spec in missing:
                    retention = spec.retention.total_seconds() if spec.retention else None
                    created = conn.execute(
                        "INSERT INTO topics (name, partitions, retention, created)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                        (spec.name, spec.partitions_or_default, retention, now),
                    ).rowcount
                    if created:
                        conn.executemany(
                            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
                            [(spec.name, p) for p in range(spec.partitions_or_default)],
                        )
            with self.store.pooled() as conn:
                for spec in missing:
                    self._load(conn, spec.name)
        for spec in specs:
            meta = self._topics[spec.name]
            check_declaration(spec, self.url, meta.partitions, meta.retention)

    @property
    def url(self) -> str:
        """The store's URL with its absolute path, for messages."""
        return f"embedded://{self.store.path.parent.absolute()}"

    def get(self, name: str) -> TopicMeta:
        """Return topic `name`.

        Raises:
            TopicNotFound: no topic has that name (only `ensure` creates topics).
        """
        meta = self._topics.get(name)
        if meta is None:
            with self.store.pooled() as conn:
                meta = self._load(conn, name)
            if meta is None:
                raise TopicNotFound(name, self.url)
        return meta

    def lookup(self, conn: sqlite3.Connection, name: str) -> TopicMeta | None:
        """Return topic `name` read through `conn` (usable inside its transaction), or None."""
        return self._topics.get(name) or self._load(conn, name)

    def _load(self, conn: sqlite3.Connection, name: str) -> TopicMeta | None:
        row = conn.execute("SELECT retention FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        pids = conn.execute(
            "SELECT pid FROM partitions WHERE topic = ? ORDER BY partition", (name,)
        ).fetchall()
        meta = TopicMeta(name, tuple(p for (p,) in pids), row[0])
        with self._lock:
            self._topics[name] = meta
        return meta

    def all(self, conn: sqlite3.Connection) -> list[TopicMeta]:
        """Return every topic, sorted by name (including those other processes created)."""
        names = [n for (n,) in conn.execute("SELECT name FROM topics ORDER BY name")]
        out = []
        for name in names:
            meta = self.lookup(conn, name)
            if meta is not None:
                out.append(meta)
        return out

    # -- appending and reading -----------------------------------------------------------

    @staticmethod
    def append(conn: sqlite3.Connection, rows: Sequence[Row], now: float) -> list[int]:
        """Append `rows` inside the caller's write transaction; return their offsets."""
        next_offsets: dict[int, int] = {}
        inserts = []
        offsets = []
        for pid, key, value, headers in rows:
            offset = next_offsets.get(pid)
            if offset is None:
                (offset,) = conn.execute(
                    "SELECT next_offset FROM partitions WHERE pid = ?", (pid,)
                ).fetchone()
            next_offsets[pid] = offset + 1
            inserts.append(((pid << OFFSET_BITS) | offset, now, key, value, headers))
            offsets.append(offset)
        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", inserts)
        conn.executemany(
            "UPDATE partitions SET next_offset = ? WHERE pid = ?",
            [(offset, pid) for pid, offset in next_offsets.items()],
        )
        return offsets

    @staticmethod
    def read(
        conn: sqlite3.Connection, meta: TopicMeta, partition: int, offset: int, limit: int
    ) -> list[Record]:
        """Return up to `limit` records of a partition from `offset` (or its log start)."""
        base = meta.pids[partition] << OFFSET_BITS
        rows = conn.execute(
            "SELECT pos, ts, key, value, headers FROM records WHERE pos >= ? AND pos < ?"
            " ORDER BY pos LIMIT ?",
            (base + max(offset, 0), base + OFFSET_SPAN, limit),
        ).fetchall()
        name = meta.name
        try:
            return [
                Record(name, partition, pos - base, key, value, decode_headers(headers), ts)
                for pos, ts, key, value, headers in rows
            ]
        except Exception:  # one broken record: read each on its own, the broken one marked
            return [
                Record(name, partition, pos - base, key, value, read_headers(headers), ts)
                for pos, ts, key, value, headers in rows
            ]

    @staticmethod
    def bounds(conn: sqlite3.Connection, meta: TopicMeta) -> list[tuple[int, int]]:
        """Return (log start, next offset) of each partition of `meta`."""
        rows = conn.execute(
            "SELECT start_offset, next_offset FROM partitions WHERE topic = ? ORDER BY partition",
            (meta.name,),
        ).fetchall()
        return [(start, end) for start, end in rows]

    @staticmethod
    def offset_at(conn: sqlite3.Connection, meta: TopicMeta, partition: int, when: float) -> int:
        """Return the first offset stored at or after `when` (the next offset if none)."""
        pid = meta.pids[partition]
        base = pid << OFFSET_BITS
        row = conn.execute(
            "SELECT pos FROM records WHERE pos >= ? AND pos < ? AND ts >= ? ORDER BY pos LIMIT 1",
            (base, base + OFFSET_SPAN, when),
        ).fetchone()
        if row is not None:
            return int(row[0]) - base
        (end,) = conn.execute("SELECT next_offset FROM partitions WHERE pid = ?", (pid,)).fetchone()
        return int(end)

    # -- retention -----------------------------------------------------------------------

    def enforce_retention(self, conn: sqlite3.Connection, now: float) -> int:
        """Delete the records older than their topic's retention; return how many.

        Cheap when there is nothing to do: one indexed lookup of the oldest record per
        partition of each topic with a retention. Each partition's deletion is its own
        short transaction, and one pass deletes at most RETENTION_BATCH records in all (a
        backlog goes over several passes), so the producer or fetcher that runs it never
        stalls for long.
        """
        deleted = 0
        for name, retention in conn.execute(
            "SELECT name, retention FROM topics WHERE retention IS NOT NULL"
        ).fetchall():
            cutoff = now - retention
            for pid, start in conn.execute(
                "SELECT pid, start_offset FROM partitions WHERE topic = ?", (name,)
            ).fetchall():
                base = pid << OFFSET_BITS
                oldest = conn.execute(
                    "SELECT ts FROM records WHERE pos >= ? AND pos < ? ORDER BY pos LIMIT 1",
                    (base + start, base + OFFSET_SPAN),
                ).fetchone()
                if oldest is None or oldest[0] >= cutoff:
                    continue
                with self.store.write(conn):
                    deleted += self._trim(conn, pid, cutoff, RETENTION_BATCH - deleted)
                if deleted >= RETENTION_BATCH:
                    return deleted
        return deleted

    @staticmethod
    def _trim(conn: sqlite3.Connection, pid: int, cutoff: float, limit: int) -> int:
        base = pid << OFFSET_BITS
        # Re-read inside the transaction: another process may have trimmed meanwhile.
        start, end = conn.execute(
            "SELECT start_offset, next_offset FROM partitions WHERE pid = ?", (pid,)
        ).fetchone()
        upper = base + min(end, start + limit)
        kept = conn.execute(
            "SELECT pos FROM records WHERE pos >= ? AND pos < ? AND ts >= ? ORDER BY pos LIMIT 1",
            (base + start, upper, cutoff),
        ).fetchone()
        new_start = (kept[0] if kept else upper) - base
        if new_start <= start:
            return 0
        cur = conn.execute(
            "DELETE FROM records WHERE pos >= ? AND pos < ?", (base + start, base + new_start)
        )
        conn.execute("UPDATE partitions SET start_offset = ? WHERE pid = ?", (new_start, pid))
        return cur.rowcount
