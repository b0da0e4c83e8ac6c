"""Delayed delivery: records held in ``delayed`` until due, then appended to their partition.

No process is special. Whoever produces or fetches first after a record is due moves it, in
one write transaction that appends it and deletes it from ``delayed``: a second process
racing for the same rows waits for the write lock, then finds them gone, so each delayed
record is appended exactly once. Pending records are never loaded all at once: releases
take at most RELEASE_BATCH rows per transaction and the admin view only counts them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from tidings.backends.embedded.log import Log, Row
from tidings.backends.embedded.store import Store

RELEASE_BATCH: Final = 1_000

DelayedRow = tuple[float, str, int, bytes | None, bytes | None, bytes | None]
"""A record to hold back: (due, topic, partition, key, value, encoded headers)."""


class Delays:
    """The ``delayed`` table of one store."""

    def __init__(self, store: Store, log: Log) -> None:
        self.store = store
        self.log = log

    @staticmethod
    def schedule(conn: sqlite3.Connection, rows: Sequence[DelayedRow]) -> None:
        """Hold `rows` back, inside the caller's write transaction."""
        conn.executemany(
            "INSERT INTO delayed (due, topic, partition, key, value, headers)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    @staticmethod
    def next_due(conn: sqlite3.Connection) -> float | None:
        """Return the earliest due time of any pending record (an index lookup)."""
        row = conn.execute("SELECT MIN(due) FROM delayed").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def release(self, conn: sqlite3.Connection, now: float, *, batches: int = 1) -> int:
        """Append up to `batches` * RELEASE_BATCH due records to their topics; return how many.

        Records are appended in due order (ties in scheduling order), stamped `now`.
        """
        moved = 0
        for _ in range(batches):
            with self.store.write(conn):
                rows = conn.execute(
                    "SELECT id, topic, partition, key, value, headers FROM delayed"
                    " WHERE due <= ? ORDER BY due, id LIMIT ?",
                    (now, RELEASE_BATCH),
                ).fetchall()
                if not rows:
                    return moved
                appends: list[Row] = []
                for _id, topic, partition, key, value, headers in rows:
                    meta = self.log.lookup(conn, topic)
                    if meta is None or partition >= meta.partitions:
                        # Unreachable unless the file was edited by hand; dropping the row
                        # silently would lose it, so keep it and fail loudly instead.
                        raise RuntimeError(f"delayed record for unknown {topic}[{partition}]")
                    appends.append((meta.pids[partition], key, value, headers))
                Log.append(conn, appends, now)
                conn.executemany("DELETE FROM delayed WHERE id = ?", [(r[0],) for r in rows])
            moved += len(rows)
            if len(rows) < RELEASE_BATCH:
                break
        return moved

    @staticmethod
    def pending(conn: sqlite3.Connection) -> dict[str, tuple[int, float]]:
        """Return (count, earliest due) of pending records per topic (counted in SQL)."""
        rows = conn.execute(
            "SELECT topic, COUNT(*), MIN(due) FROM delayed GROUP BY topic"
        ).fetchall()
        return {topic: (count, due) for topic, count, due in rows}
