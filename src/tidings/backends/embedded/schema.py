"""The store's tables: one file holds topics, logs, delays, groups and offsets.

- ``topics`` / ``partitions``: a topic's shape and retention; each partition's id (``pid``),
  log start and next offset.
- ``records``: every partition's log in one table, keyed by ``(pid << 40) | offset``.
- ``delayed``: records held back until ``due``.
- ``groups`` / ``members`` / ``owners`` / ``offsets``: consumer groups (see `groups`).

``PRAGMA user_version`` holds SCHEMA_VERSION; creation is idempotent and safe when several
processes open a new store at once (it runs in one IMMEDIATE transaction).
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Final

SCHEMA_VERSION: Final = 1

# Offsets live in the records table's rowid: (partition id << 40) | offset. Appends are
# then rowid appends and a fetch is a rowid range scan, the cheapest access SQLite has.
OFFSET_BITS: Final = 40

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    retention REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    pid INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL DEFAULT 0,
    next_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic, partition)
);
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY,  -- (pid << {OFFSET_BITS}) | offset
    ts REAL NOT NULL,
    key BLOB,
    value BLOB,
    headers BLOB
);
CREATE TABLE IF NOT EXISTS delayed (
    id INTEGER PRIMARY KEY,
    due REAL NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers BLOB
);
CREATE INDEX IF NOT EXISTS delayed_by_due ON delayed (due);
CREATE INDEX IF NOT EXISTS delayed_by_topic ON delayed (topic, due);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS members (
    grp TEXT NOT NULL,
    member TEXT NOT NULL,
    topics TEXT NOT NULL,
    session_timeout REAL NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""


Layout = dict[str, tuple[str, ...]]
"""Table name -> its column names, in order."""


def layout(conn: sqlite3.Connection) -> Layout:
    """Return the tables of the database behind `conn` with their columns."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        t: tuple(row[1] for row in conn.execute(f"PRAGMA table_info({quote(t)})"))
        for t in sorted(tables)
    }


@functools.cache
def expected_layout() -> Layout:
    """The tables SCHEMA creates (built in memory once: SCHEMA stays the one source)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        return layout(conn)
    finally:
        conn.close()


def mismatches(found: Layout) -> list[str]:
    """Describe how `found` differs from this version's tables ("" when it matches)."""
    out = []
    for table, columns in expected_layout().items():
        have = found.get(table)
        if have is None:
            out.append(f"no table {table}")
        elif have != columns:
            found_cols, wanted = ", ".join(have), ", ".join(columns)
            out.append(f"{table}({found_cols}) where {table}({wanted}) is expected")
    return out


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
