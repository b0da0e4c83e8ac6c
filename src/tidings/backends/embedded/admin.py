"""Admin views of the store: topics, groups with their lag, and resetting a group."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

from tidings.backends.base import GroupInfo, PartitionLag, TopicInfo
from tidings.backends.embedded.delays import Delays
from tidings.backends.embedded.groups import Groups
from tidings.backends.embedded.log import Log, TopicMeta
from tidings.backends.embedded.store import Store
from tidings.exceptions import ConfigurationError
from tidings.records import TopicPartition


def describe_topics(conn: sqlite3.Connection, log: Log) -> list[TopicInfo]:
    """Describe every topic; delayed records are counted in SQL, never loaded."""
    pending = Delays.pending(conn)
    out = []
    for meta in log.all(conn):
        bounds = Log.bounds(conn, meta)
        count, due = pending.get(meta.name, (0, None))
        out.append(
            TopicInfo(
                name=meta.name,
                partitions=meta.partitions,
                retention=meta.retention,
                start_offsets=tuple(start for start, _ in bounds),
                end_offsets=tuple(end for _, end in bounds),
                delayed_pending=count,
                next_due=due,
            )
        )
    return out


def describe_groups(
    conn: sqlite3.Connection, log: Log, now: float, only: Collection[str] | None = None
) -> list[GroupInfo]:
    """Describe every group (or those in `only`): live members, and committed/end/owner per
    known partition.

    A group's partitions are those it committed plus those its members subscribe to.
    Members whose session ran out are not listed (the next heartbeat deletes them).
    """
    names = sorted(
        {n for (n,) in conn.execute("SELECT name FROM groups")}
        | {n for (n,) in conn.execute("SELECT DISTINCT grp FROM offsets")}
    )
    if only is not None:
        names = [n for n in names if n in only]
    ends: dict[TopicPartition, int] = {}
    metas: dict[str, TopicMeta] = {}
    for meta in log.all(conn):
        metas[meta.name] = meta
        for p, (_start, end) in enumerate(Log.bounds(conn, meta)):
            ends[TopicPartition(meta.name, p)] = end
    out = []
    for name in names:
        live: list[str] = []
        tps: set[TopicPartition] = set()
        for member, topics, heartbeat, timeout in conn.execute(
            "SELECT member, topics, heartbeat, session_timeout FROM members WHERE grp = ?",
            (name,),
        ):
            if heartbeat + timeout >= now:
                live.append(member)
            for topic in json.loads(topics):
                if topic in metas:
                    tps.update(TopicPartition(topic, p) for p in range(metas[topic].partitions))
        committed = {
            TopicPartition(t, p): c
            for t, p, c in conn.execute(
                "SELECT topic, partition, committed FROM offsets WHERE grp = ?", (name,)
            )
        }
        owners = {
            TopicPartition(t, p): m
            for t, p, m in conn.execute(
                "SELECT topic, partition, member FROM owners WHERE grp = ?", (name,)
            )
        }
        tps.update(committed)
        lags = tuple(
            PartitionLag(tp.topic, tp.partition, committed.get(tp), ends.get(tp, 0), owners.get(tp))
            for tp in sorted(tps)
        )
        out.append(GroupInfo(name, "Stable" if live else "Empty", tuple(sorted(live)), lags))
    return out


def reset_group(
    store: Store, conn: sqlite3.Connection, meta: TopicMeta, group: str, to: str | float,
    now: float, *, dry_run: bool = False,
) -> dict[TopicPartition, int]:  # fmt: skip
    """Set `group`'s committed offsets on `meta` to "earliest", "latest" or a time.

    With `dry_run`, return the offsets it would set and write none of them.

    Raises:
        ConfigurationError: `to` is not one of those, or the group has live members.
    """
    if isinstance(to, str) and to not in ("earliest", "latest"):
        raise ConfigurationError(
            f"Cannot reset group {group!r} to {to!r}: use 'earliest', 'latest' or a time "
            "(seconds since the epoch)."
        )
    with store.write(conn):
        Groups.expire(conn, group, now)
        (live,) = conn.execute("SELECT COUNT(*) FROM members WHERE grp = ?", (group,)).fetchone()
        if live:
            raise ConfigurationError(
                f"Group {group!r} has {live} live member(s); stop its workers (or wait for "
                "their sessions to expire) before resetting its offsets."
            )
        result: dict[TopicPartition, int] = {}
        for p, (start, end) in enumerate(Log.bounds(conn, meta)):
            if to == "earliest":
                offset = start
            elif to == "latest":
                offset = end
            else:
                offset = Log.offset_at(conn, meta, p, float(to))
            result[TopicPartition(meta.name, p)] = offset
        if dry_run:
            return result
        conn.executemany(
            "INSERT INTO offsets (grp, topic, partition, committed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (grp, topic, partition) DO UPDATE SET committed = excluded.committed",
            [(group, tp.topic, tp.partition, offset) for tp, offset in result.items()],
        )
        conn.execute(
            "INSERT INTO groups (name, epoch) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET epoch = epoch + 1",
            (group,),
        )
    return result
