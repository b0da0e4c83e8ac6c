"""The relay: moves committed outbox rows to the broker, in id order, one leader at a time.

A pass reads up to `batch` unrelayed rows in id order, produces them (returning only when
the broker stored them durably), then deletes them (or marks them relayed, with `keep=`)
in the same database transaction (REPEATABLE READ on PostgreSQL, so the delete sees the
rows the read saw and no row committed in between). A crash between the produce and the
commit sends those rows again on the next pass: at least once, duplicates possible,
nothing lost.

There is no high-water mark: every pass reads whatever unrelayed rows are visible, so a
transaction that commits a low id after higher ids were relayed is sent on the next pass
(Watermill #311 cannot happen here).

Several relays are safe: one leader relays at a time, the others wait and take over. On
PostgreSQL the leader holds a session advisory lock on its own connection, which the
server releases the moment the process dies; on SQLite it holds a lock file beside the
database (flock, released by the OS). Several relays each taking rows with FOR UPDATE SKIP
LOCKED would break the order of a key whose rows two relays took at once.

A relay wakes when this process commits outbox rows, on PostgreSQL also on a NOTIFY from
any process (LISTEN on its own connection), and otherwise every `poll` seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text, update

from tidings.outbox.outbox import Outbox
from tidings.outbox.tables import (
    LEADER_LOCK,
    LOCK_CLASS,
    NOTIFY_CHANNEL,
    OUTBOX,
    READ_ONLY,
    decode_headers,
    sync_engine_for,
)
from tidings.records import OutgoingRecord

log = logging.getLogger("tidings.outbox")

FINAL_PASS = 5.0
"""Seconds a stopping relay spends sending what is already committed."""
_TRY_LEAD = text(f"SELECT pg_try_advisory_lock({LOCK_CLASS}, {LEADER_LOCK})")
_PENDING = (
    select(
        OUTBOX.c.id,
        OUTBOX.c.topic,
        OUTBOX.c.key,
        OUTBOX.c.value,
        OUTBOX.c.headers,
        OUTBOX.c.deliver_at,
    )
    .where(OUTBOX.c.relayed_at.is_(None))
    .order_by(OUTBOX.c.id)
)


class Relay:
    """Moves one outbox's committed rows to the broker (see the module docstring).

    Not thread-safe: one thread drives a relay (`serve`, or `drain` in tests and scripts).
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.relayed = 0
        """Rows this relay produced and then deleted or marked (each counted once)."""
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._leader = False
        self._lock_fd: int | None = None

    # -- one pass ------------------------------------------------------------------------

    def relay_once(self) -> int:
        """Relay up to `outbox.batch` rows if this relay leads; return how many it relayed."""
        conn = self._connection()
        if not self._lead(conn):
            return 0
        box = self.outbox
        if box.dialect == "postgresql":
            # One REPEATABLE READ transaction: the delete sees exactly the rows the read
            # saw, never a lower id committed in between. MVCC: writers are not held up.
            with conn.begin():
                rows = conn.execute(_PENDING.limit(box.batch)).all()
                if not rows:
                    return 0
                self._produce(rows)
                self._mark(conn, rows[-1].id)
        else:
            # SQLite: the write lock is taken only to delete, never while the broker stores
            # the batch. No row at or below the last id read can appear in between:
            # SQLite gives a new row the highest id plus one, and only the leader deletes.
            conn.info[READ_ONLY] = True  # a WAL snapshot: no lock, writers go on
            try:
                with conn.begin():
                    rows = conn.execute(_PENDING.limit(box.batch)).all()
            finally:
                conn.info[READ_ONLY] = False
            if not rows:
                return 0
            self._produce(rows)
            with conn.begin():
                self._mark(conn, rows[-1].id)
        self.relayed += len(rows)
        box.count_relayed(len(rows))
        return len(rows)

    def _produce(self, rows: Sequence[Any]) -> None:
        records = [
            OutgoingRecord(r.topic, r.key, r.value, decode_headers(r.headers), None, r.deliver_at)
            for r in rows
        ]
        self.outbox.backend().produce(records)

    def _mark(self, conn: Connection, last: int) -> None:
        """Delete (or, with `keep`, mark relayed) the unrelayed rows up to id `last`."""
        sent = (OUTBOX.c.id <= last) & OUTBOX.c.relayed_at.is_(None)
        if self.outbox.keep is None:
            conn.execute(delete(OUTBOX).where(sent))
        else:
            conn.execute(update(OUTBOX).where(sent).values(relayed_at=time.time()))

    def drain(self) -> int:
        """Relay until the outbox is empty (or another relay leads); return rows relayed."""
        total = 0
        while True:
            n = self.relay_once()
            total += n
            if n < self.outbox.batch:
                return total

    def forget_relayed(self) -> int:
        """Delete rows relayed longer ago than `keep` (no-op without `keep`); return count."""
        keep = self.outbox.keep
        if keep is None:
            return 0
        conn = self._connection()
        with conn.begin():
            result = conn.execute(
                delete(OUTBOX).where(OUTBOX.c.relayed_at < time.time() - keep.total_seconds())
            )
        return int(result.rowcount)

    @property
    def leader(self) -> bool:
        return self._leader

    # -- the loop ------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Relay until `stop` is set; survives database and broker errors (logged, retried)."""
        box = self.outbox
        listener = None
        if box.dialect == "postgresql":
            listener = threading.Thread(
                target=self._listen, args=(stop,), name="tidings-outbox-listen", daemon=True
            )
            listener.start()
        last_cleanup = 0.0
        try:
            while not stop.is_set():
                box.wake.clear()
                try:
                    n = self.relay_once()
                    if box.keep is not None and time.monotonic() - last_cleanup > 60:
                        self.forget_relayed()
                        last_cleanup = time.monotonic()
                except Exception as exc:  # a relay must outlive outages; it retries
                    log.warning(
                        "outbox relay pass failed (%s: %s); retrying in %.1f s",
                        type(exc).__name__,
                        exc,
                        box.poll,
                    )
                    self.close()
                    stop.wait(box.poll)
                    continue
                if n < box.batch:
                    box.wake.wait(box.poll)
            self._last_pass(time.monotonic() + FINAL_PASS)
        finally:
            self.close()
            if listener is not None:
                box.wake.set()
                listener.join(5)

    def _last_pass(self, deadline: float) -> None:
        """On a graceful stop, relay what is committed (for up to FINAL_PASS seconds)."""
        try:
            while time.monotonic() < deadline and self.relay_once() >= self.outbox.batch:
                pass
        except Exception as exc:  # the rows stay; the next relay sends them
            log.warning("outbox relay: last pass failed (%s: %s)", type(exc).__name__, exc)

    @contextlib.contextmanager
    def running(self) -> Iterator[Relay]:
        """Serve in a background thread for the duration of a `with` block."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.serve, args=(stop,), name="tidings-outbox-relay", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            self.outbox.wake.set()
            thread.join()

    def close(self) -> None:
        """Release the connection (and with it the leadership)."""
        self._leader = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- internals -----------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._engine is None:
                self._engine = sync_engine_for(self.outbox.engine, pool_size=1, max_overflow=0)
            self._conn = self._engine.connect()
            if self.outbox.dialect == "postgresql":
                self._conn = self._conn.execution_options(isolation_level="REPEATABLE READ")
        return self._conn

    def _lead(self, conn: Connection) -> bool:
        if self._leader:
            return True
        if self.outbox.dialect == "sqlite":
            return self._lead_sqlite()
        with conn.begin():
            self._leader = bool(conn.execute(_TRY_LEAD).scalar())
        if self._leader:
            log.info("outbox relay is the leader")
        return self._leader

    def _lead_sqlite(self) -> bool:
        """Take the lock file beside the database (released by the OS when we die)."""
        path = f"{self.outbox.engine.url.database}-tidings-relay.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self._leader = True
        log.info("outbox relay is the leader (%s)", path)
        return True

    def _listen(self, stop: threading.Event) -> None:
        """Set `outbox.wake` on every NOTIFY from a committing writer (PostgreSQL)."""
        import psycopg

        url = self.outbox.engine.url.set(drivername="postgresql")
        while not stop.is_set():
            try:
                with psycopg.connect(
                    url.render_as_string(hide_password=False), autocommit=True
                ) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.outbox.wake.set()
            except Exception as exc:  # polling still relays; try to listen again
                log.debug("outbox LISTEN failed (%s); relying on polling", exc)
                stop.wait(self.outbox.poll)
