"""The SQLite file: opening it, its pragmas, and transactions.

One database file, ``<dir>/tidings.db``, in WAL mode: readers never block the writer and a
process killed at any moment leaves the file consistent (with ``synchronous=NORMAL`` a
committed transaction survives any process crash; only a power cut may lose the last ones).

Writers serialize in two layers: a lock per process (so threads of one process queue in
Python instead of spinning in SQLite's busy handler) and ``BEGIN IMMEDIATE`` with a busy
timeout across processes. Every SQLite failure that callers should see is translated into
the tidings exception tree here, with the path and the fix in the message.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from tidings.backends.embedded.checkpoint import BACKSTOP_PAGES, Checkpointer
from tidings.backends.embedded.schema import SCHEMA, SCHEMA_VERSION, layout, mismatches
from tidings.exceptions import BrokerError, ConfigurationError, StorageError, StorageFull

DB_NAME: Final = "tidings.db"
SYNCHRONOUS_MODES: Final = ("NORMAL", "FULL")
BUSY_TIMEOUT_MS: Final = 5_000
LOCK_WAIT_LIMIT: Final = 60.0
"""Seconds a writer keeps retrying a locked database before giving up."""

WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024
TRANSACTION_BYTES: Final = 2 * 8192
"""What one small write transaction adds to the WAL (about two pages), for checkpointing."""
PAGE_SIZE: Final = 8192
"""Bytes per page of a new store. Measured with ~1 KB events: 8 KiB pages make batched
appends ~15% cheaper in CPU than 4 KiB, at ~5% cost to one-record transactions."""


class Store:
    """The database file of one embedded broker, shared by every thread of this process.

    `connect()` opens a connection configured like all the others; `pooled()` lends one for
    a short operation; `write(conn)` runs a write transaction on it. Connections are made
    with ``check_same_thread=False`` because a consumer may be opened on one thread and
    polled on another; each connection is still used by one thread at a time.

    With `read_only`, the file is opened through SQLite's read-only mode (``mode=ro``):
    nothing is created (a missing store raises `StorageError` "No tidings store at PATH"),
    every write is refused, and a store on a read-only mount can still be read.
    """

    def __init__(
        self,
        directory: Path,
        *,
        synchronous: str = "NORMAL",
        max_page_count: int | None = None,
        read_only: bool = False,
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ConfigurationError(
                f"synchronous={synchronous!r} is not supported by the embedded broker; "
                "use 'NORMAL' (survives process crashes) or 'FULL' (also power cuts)."
            )
        if max_page_count is not None and max_page_count < 1:
            raise ConfigurationError(f"max_page_count must be >= 1, not {max_page_count}.")
        self.directory = directory
        self.path = directory / DB_NAME
        self.synchronous = mode
        self.max_page_count = max_page_count
        self.read_only = read_only
        self._write_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        self.checkpointer = Checkpointer(self.connect, self.discard)
        """Copies the WAL into the database file off the writers' threads (`wrote`)."""
        if read_only:
            if not self.path.is_file():
                raise StorageError(
                    f"No tidings store at {self.directory.absolute()} (it has no {DB_NAME}). "
                    "Check the path (--broker embedded://PATH, or $TIDINGS_BROKER); a store "
                    "is created by `tidings run`, `tidings publish`, `tidings topics create` "
                    "or `tidings demo`."
                )
        else:
            self._prepare_directory()
        conn = self.connect()
        try:
            self._create_schema(conn)
        finally:
            self.release(conn)

    # -- opening -------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the embedded broker's data directory {self.directory}: "
                f"{exc.strerror or exc}. Choose a writable path (embedded://PATH) or fix its "
                "permissions."
            ) from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StorageError(
                f"The embedded broker's data directory {self.directory} is not writable. "
                "Fix its permissions or choose another path (embedded://PATH)."
            )

    def connect(self) -> sqlite3.Connection:
        """Open a new connection with the broker's pragmas; the caller must `release` it."""
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            raise self.translate(exc, "open") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.read_only:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes on a new file
                self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA cache_size = -16000")
            # After a huge batch, shrink the WAL file back once it is checkpointed.
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            conn.execute("PRAGMA foreign_keys = OFF")
            if self.max_page_count is not None:
                conn.execute(f"PRAGMA max_page_count = {int(self.max_page_count)}")
        except sqlite3.Error as exc:
            conn.close()
            raise self.translate(exc, "open") from exc
        with self._pool_lock:
            self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False, uri=True,
            )  # fmt: skip
            conn.execute("PRAGMA user_version").fetchone()  # the WAL index opens lazily
            return conn
        except sqlite3.OperationalError:
            # A WAL store on a read-only mount, closed cleanly (no -shm file, and none can
            # be created): nobody can be writing it, so read it as an immutable file.
            if os.access(self.directory, os.W_OK) or (self.directory / f"{DB_NAME}-wal").exists():
                raise
        return sqlite3.connect(
            f"{uri}&immutable=1", isolation_level=None, check_same_thread=False, uri=True
        )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Check the store's schema, or create it in a file that has no tables yet.

        Raises:
            StorageError: the file holds another schema version or another table layout
                (it is left untouched).
        """
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION or (self.read_only and version == 0):
            self._check_layout(conn, version)
            return
        if version != 0:
            newer = version > SCHEMA_VERSION
            raise StorageError(
                f"{self.path} has schema version {version}; this tidings expects schema "
                f"version {SCHEMA_VERSION}. "
                + (
                    "It was written by a newer tidings: upgrade tidings, or "
                    if newer
                    else "It was not written by this tidings: "
                )
                + "use another data directory (embedded://PATH), or move the store away."
            )
        with self.write(conn):
            # Several processes may start at once: the IMMEDIATE transaction serializes
            # them, and a loser finds the winner's tables with the version set.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and layout(conn):
                self._check_layout(conn, version)
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        if version != 0:
            self._check_layout(conn, version)

    def _check_layout(self, conn: sqlite3.Connection, version: int) -> None:
        wrong = mismatches(layout(conn))
        if wrong:
            raise StorageError(
                f"{self.path} is not a store of this tidings: its tables differ from "
                f"schema version {SCHEMA_VERSION} ({'; '.join(wrong)}; the file says schema "
                f"version {version}). It was written by another tidings version or another "
                "program. Use another data directory (embedded://PATH), or move the file "
                "away; open it with the tidings that wrote it to read its events."
            )

    # -- connections ---------------------------------------------------------------------

    @contextlib.contextmanager
    def pooled(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for one short operation (produce, an admin query).

        SQLite errors raised in the body come out as tidings exceptions (see `errors`).
        """
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self.connect()
        try:
            with self.errors("use"):
                yield conn
        finally:
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Raise SQLite errors from the body as the tidings exception that says the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.translate(exc, doing) from exc

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call `callback` with every SQL statement run on this store's open connections.

        For diagnostics and tests (how much an idle consumer queries); None stops it.
        """
        with self._pool_lock:
            conns = list(self._all)
        for conn in conns:
            conn.set_trace_callback(callback)

    def release(self, conn: sqlite3.Connection) -> None:
        """Return a connection from `connect` to the pool for reuse."""
        with self._pool_lock:
            if self._closed:
                conn.close()
            else:
                self._pool.append(conn)

    def discard(self, conn: sqlite3.Connection) -> None:
        """Close a connection from `connect` for good."""
        with self._pool_lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every connection this store opened."""
        self.checkpointer.close()
        with self._pool_lock:
            self._closed = True
            conns, self._all, self._pool = self._all, [], []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """Run the body in one ``BEGIN IMMEDIATE`` transaction: all of it commits or none.

        Raises:
            StorageFull: the disk or `max_page_count` is full (nothing was written).
            StorageError: the file cannot be written.
            BrokerError: another process held the write lock for over a minute.
        """
        with self._write_lock:
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.translate(exc, "write") from exc
                raise
        # Every commit appends whole pages to the WAL, however little it changed: count
        # them, so that small transactions (commits, heartbeats, one-event publishes) get
        # checkpointed too instead of growing the WAL to the 8 MiB backstop.
        self.checkpointer.wrote(TRANSACTION_BYTES)

    @staticmethod
    @contextlib.contextmanager
    def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """Run the body's reads in one read transaction: a consistent view, no lock taken."""
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _retry_locked(self, action: Callable[[], object]) -> None:
        """Run `action`, retrying while another process holds the database locked.

        The busy timeout already waits inside SQLite; this outer loop covers the cases
        where SQLite returns SQLITE_BUSY at once (e.g. while a WAL is being recovered).
        """
        deadline = time.monotonic() + LOCK_WAIT_LIMIT
        delay = 0.001
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def translate(self, exc: sqlite3.Error, doing: str) -> BrokerError:
        """Map a SQLite error to the tidings exception that says how to fix it."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == sqlite3.SQLITE_FULL:
            return StorageFull(
                f"The embedded broker's store {self.path} is full ({exc}); free disk space or "
                "raise the limit (max_page_count), or lower topic retention."
            )
        if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return StorageError(
                f"Cannot {doing} the embedded broker's store {self.path}: {exc}. Make the "
                "directory and its files writable, or choose another path (embedded://PATH)."
            )
        if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return StorageError(
                f"{self.path} is not a usable tidings store ({exc}). Move it away or choose "
                "another data directory (embedded://PATH)."
            )
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return BrokerError(
                f"The embedded broker's store {self.path} stayed locked by another process "
                f"for over {LOCK_WAIT_LIMIT:.0f}s; check for a stuck tidings process."
            )
        return StorageError(f"The embedded broker's store {self.path} failed to {doing}: {exc}.")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)
