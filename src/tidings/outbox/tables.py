"""The outbox and inbox tables, and the synchronous engine the relay and cleaners use.

Each table has its own MetaData (`OUTBOX_METADATA`, `INBOX_METADATA`) so Alembic users can
include exactly what they use; `create_tables` is for everyone else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.exceptions import ConfigurationError
from tidings.records import Headers

AnyEngine = Engine | AsyncEngine

OUTBOX_METADATA = MetaData()
INBOX_METADATA = MetaData()

OUTBOX = Table(
    "tidings_outbox",
    OUTBOX_METADATA,
    # SQLite makes an INTEGER PRIMARY KEY the rowid (allocated under its one write lock).
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("headers", LargeBinary, nullable=False),
    Column("deliver_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("relayed_at", Float, nullable=True),
    Index(
        "ix_tidings_outbox_pending",
        "id",
        postgresql_where=text("relayed_at IS NULL"),
        sqlite_where=text("relayed_at IS NULL"),
    ),
)

INBOX = Table(
    "tidings_inbox",
    INBOX_METADATA,
    Column("group_name", String(200), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("handled_at", Float, nullable=False),
    Index("ix_tidings_inbox_handled_at", "handled_at"),
)

SQLITE_BUSY_SECONDS = 30.0
"""How long a relay or cleaner waits for SQLite's write lock before the pass fails."""
NOTIFY_CHANNEL = "tidings_outbox"
LOCK_CLASS = 1952737638
"""First half of the two-int advisory locks tidings takes on PostgreSQL: per key (second
half: a hash of the key) in writers' transactions, and the relay leader's (LEADER_LOCK)."""
LEADER_LOCK = 1952737639

_SYNC_DRIVERS = {
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "sqlite+aiosqlite": "sqlite+pysqlite",
}


def encode_headers(headers: Headers) -> bytes:
    """Headers as ``0name NUL value NUL name NUL value``, or as JSON (``J[...]``) when a
    name or value holds a NUL byte. The relay decodes every row it sends, so the common
    form is the one that splits fastest."""
    parts = []
    for k, v in headers:
        parts.append(k.encode())
        parts.append(v)
    if not any(b"\0" in p for p in parts):
        return b"0" + b"\0".join(parts)
    # latin-1 maps every byte to one character, so any value round-trips through JSON.
    return b"J" + json.dumps([[k, v.decode("latin-1")] for k, v in headers]).encode()


def decode_headers(blob: bytes) -> Headers:
    if blob[:1] == b"J":
        return tuple((k, v.encode("latin-1")) for k, v in json.loads(blob[1:]))
    if len(blob) == 1:
        return ()
    parts = blob[1:].split(b"\0")
    if len(parts) % 2:
        raise ValueError(f"outbox headers hold an odd number of fields ({len(parts)})")
    return tuple(zip(map(_NAMES.__getitem__, parts[0::2]), parts[1::2], strict=True))


class _Names(dict[bytes, str]):
    """Decoded header names, most of which repeat on every row (bounded)."""

    def __missing__(self, raw: bytes) -> str:
        name = raw.decode()
        if len(self) < 1000:
            self[raw] = name
        return name


_NAMES = _Names()


def dialect_of(engine: AnyEngine) -> str:
    """Return 'postgresql' or 'sqlite', or raise ConfigurationError for anything else."""
    if not isinstance(engine, Engine | AsyncEngine):
        raise ConfigurationError(
            f"app.outbox()/app.inbox() take a SQLAlchemy Engine or AsyncEngine, got "
            f"{type(engine).__name__}. Create one with sqlalchemy.create_engine(URL)."
        )
    name = engine.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise ConfigurationError(
            f"The outbox and inbox support PostgreSQL and SQLite, not {name!r} "
            f"({engine.url.render_as_string()})."
        )
    return name


def sync_engine_for(engine: AnyEngine, **kwargs: Any) -> Engine:
    """A new synchronous Engine on the same database as `engine` (async drivers swapped).

    The relay and the cleaners run on threads of their own; they never share the user's
    pool (an asyncpg connection belongs to one event loop). On SQLite every transaction
    begins IMMEDIATE, so the one writer is taken before the first read.
    """
    url: URL = engine.url
    driver = _SYNC_DRIVERS.get(url.drivername)
    if driver is None and url.drivername == "postgresql":
        driver = "postgresql+psycopg"
    if driver is not None:
        url = url.set(drivername=driver)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
            raise ConfigurationError(
                f"The outbox on SQLite needs a database file shared by the app and the relay, "
                f"not an in-memory database ({engine.url.render_as_string()}). Use "
                "sqlite:///path/to/file.db."
            )
        sync = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, **kwargs)
        event.listen(sync, "connect", _sqlite_connect)
        event.listen(sync, "begin", _sqlite_begin)
        return sync
    return create_engine(url, **kwargs)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module, so "begin" below is the only BEGIN.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


READ_ONLY = "tidings.read_only"
"""Set in a SQLite connection's `info` to begin its next transactions deferred (reads in
WAL mode need no lock); otherwise they begin IMMEDIATE (the one writer, taken up front)."""


def _sqlite_begin(connection: Any) -> None:
    if connection.info.get(READ_ONLY, False):
        connection.exec_driver_sql("BEGIN")
        return
    # Retry every half millisecond rather than through SQLite's busy handler, which backs off
    # to 100 ms sleeps: under a steady stream of writers it would rarely get its turn.
    cursor = connection.connection.dbapi_connection.cursor()
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")


def create(engine: AnyEngine, metadata: MetaData) -> None:
    """Create the tables of `metadata` that are missing (WAL mode on SQLite)."""
    sync = sync_engine_for(engine)
    try:
        with sync.begin() as conn:
            metadata.create_all(conn)
    finally:
        sync.dispose()
