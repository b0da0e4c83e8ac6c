"""Consumer groups across processes: membership, heartbeats, ownership and offsets.

The tables hold the whole protocol, so any process can take part and none is special:

- ``members``: one row per live member, with its subscription and last heartbeat. A member
  whose heartbeat is older than its own session timeout is expired by any other member
  (its row and its ownership rows are deleted in one transaction).
- ``owners``: which member currently handles each partition. A member claims a partition
  only when no live member owns it, and releases it only after its listener's
  ``on_revoked`` returned, so at most one member handles a partition at any moment.
- ``offsets``: committed offsets. A commit is applied only for partitions the committer
  still owns, so a revoked or expired member cannot overwrite its successor's progress.
- ``groups.epoch``: bumped by every join, leave, release and expiry, so members notice a
  change with one cheap read instead of re-reading the whole group on every poll.

Every member computes the same target assignment from the member rows (`target`), so the
target itself is never stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tidings.backends.embedded.store import Store
from tidings.records import TopicPartition


@dataclass(frozen=True, slots=True)
class GroupView:
    """A consistent snapshot of one group."""

    epoch: int
    members: dict[str, tuple[str, ...]]
    """Member id -> subscribed topics, for every member row (expired or not yet)."""
    owners: dict[TopicPartition, str]


def target(
    members: Mapping[str, Sequence[str]], partitions: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Spread partitions over members: the memory backend's algorithm, deterministic.

    Partitions of the subscribed topics (sorted by topic, then number) go round-robin to the
    sorted members subscribed to their topic. `partitions` maps topic -> partition count.
    """
    result: dict[str, set[TopicPartition]] = {m: set() for m in members}
    ordered = sorted(members)
    subscribed = sorted({t for topics in members.values() for t in topics if t in partitions})
    tps = [TopicPartition(t, p) for t in subscribed for p in range(partitions[t])]
    for i, tp in enumerate(tps):
        candidates = [m for m in ordered if tp.topic in members[m]]
        if candidates:
            result[candidates[i % len(candidates)]].add(tp)
    return result


class Groups:
    """Group operations of one store; every method takes the connection to use."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def epoch(conn: sqlite3.Connection, group: str) -> int:
        """Return the group's change counter (0 for a group never joined)."""
        row = conn.execute("SELECT epoch FROM groups WHERE name = ?", (group,)).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _bump(conn: sqlite3.Connection, group: str) -> None:
        conn.execute(
            "INSERT INTO groups (name, epoch) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET epoch = epoch + 1",
            (group,),
        )

    @classmethod
    def expire(cls, conn: sqlite3.Connection, group: str, now: float) -> list[str]:
        """Delete members whose session ran out, inside the caller's write transaction."""
        stale = [
            m
            for (m,) in conn.execute(
                "SELECT member FROM members WHERE grp = ? AND heartbeat + session_timeout < ?",
                (group, now),
            )
        ]
        for member in stale:
            conn.execute("DELETE FROM owners WHERE grp = ? AND member = ?", (group, member))
            conn.execute("DELETE FROM members WHERE grp = ? AND member = ?", (group, member))
        if stale:
            cls._bump(conn, group)
        return stale

    def join(
        self,
        conn: sqlite3.Connection,
        group: str,
        member: str,
        topics: Sequence[str],
        session_timeout: float,
        now: float,
    ) -> None:
        """Add `member` to `group` owning nothing (a reused member id starts afresh)."""
        with self.store.write(conn):
            self.expire(conn, group, now)
            conn.execute("DELETE FROM owners WHERE grp = ? AND member = ?", (group, member))
            conn.execute(
                "INSERT OR REPLACE INTO members (grp, member, topics, session_timeout, heartbeat)"
                " VALUES (?, ?, ?, ?, ?)",
                (group, member, json.dumps(sorted(set(topics))), session_timeout, now),
            )
            self._bump(conn, group)

    def heartbeat(self, conn: sqlite3.Connection, group: str, member: str, now: float) -> bool:
        """Record that `member` is alive and expire stale others; False if it was expired."""
        with self.store.write(conn):
            alive = conn.execute(
                "UPDATE members SET heartbeat = ? WHERE grp = ? AND member = ?",
                (now, group, member),
            ).rowcount
            self.expire(conn, group, now)
        return bool(alive)

    def leave(self, conn: sqlite3.Connection, group: str, member: str) -> None:
        """Remove `member` and its ownership so the others take over at once."""
        with self.store.write(conn):
            conn.execute("DELETE FROM owners WHERE grp = ? AND member = ?", (group, member))
            gone = conn.execute(
                "DELETE FROM members WHERE grp = ? AND member = ?", (group, member)
            ).rowcount
            if gone:
                self._bump(conn, group)

    @staticmethod
    def view(conn: sqlite3.Connection, group: str) -> GroupView:
        """Read the group's members and owners in one consistent snapshot."""
        with Store.snapshot(conn):
            epoch = Groups.epoch(conn, group)
            members = {
                m: tuple(json.loads(topics))
                for m, topics in conn.execute(
                    "SELECT member, topics FROM members WHERE grp = ?", (group,)
                )
            }
            owners = {
                TopicPartition(t, p): m
                for t, p, m in conn.execute(
                    "SELECT topic, partition, member FROM owners WHERE grp = ?", (group,)
                )
            }
        return GroupView(epoch, members, owners)

    def claim(
        self, conn: sqlite3.Connection, group: str, member: str, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int | None] | None:
        """Take the `tps` nobody live owns; return them with their committed offsets.

        Returns None when `member` is no longer in the group (it must rejoin first).
        """
        claimed: dict[TopicPartition, int | None] = {}
        with self.store.write(conn):
            if not conn.execute(
                "SELECT 1 FROM members WHERE grp = ? AND member = ?", (group, member)
            ).fetchone():
                return None
            for tp in tps:
                took = conn.execute(
                    "INSERT INTO owners (grp, topic, partition, member) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (grp, topic, partition) DO UPDATE SET member = excluded.member"
                    " WHERE owners.member = excluded.member OR owners.member NOT IN"
                    " (SELECT member FROM members WHERE grp = excluded.grp)",
                    (group, tp.topic, tp.partition, member),
                ).rowcount
                if took:
                    row = conn.execute(
                        "SELECT committed FROM offsets"
                        " WHERE grp = ? AND topic = ? AND partition = ?",
                        (group, tp.topic, tp.partition),
                    ).fetchone()
                    claimed[tp] = None if row is None else int(row[0])
        return claimed

    def release(
        self, conn: sqlite3.Connection, group: str, member: str, tps: Sequence[TopicPartition]
    ) -> None:
        """Give up `tps` (after the listener's on_revoked) so their new owner can claim them."""
        with self.store.write(conn):
            conn.executemany(
                "DELETE FROM owners WHERE grp = ? AND topic = ? AND partition = ? AND member = ?",
                [(group, tp.topic, tp.partition, member) for tp in tps],
            )
            self._bump(conn, group)

    def commit(
        self,
        conn: sqlite3.Connection,
        group: str,
        member: str,
        offsets: Mapping[TopicPartition, int],
    ) -> None:
        """Store `offsets`, but only for the partitions `member` still owns."""
        with self.store.write(conn):
            self.store_offsets(conn, group, member, offsets)

    @staticmethod
    def store_offsets(
        conn: sqlite3.Connection,
        group: str,
        member: str,
        offsets: Mapping[TopicPartition, int],
    ) -> None:
        """`commit` inside the caller's write transaction (owned partitions only)."""
        conn.executemany(
            "INSERT INTO offsets (grp, topic, partition, committed)"
            " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM owners"
            "  WHERE grp = ?1 AND topic = ?2 AND partition = ?3 AND member = ?5)"
            " ON CONFLICT (grp, topic, partition) DO UPDATE SET committed = excluded.committed",
            [(group, tp.topic, tp.partition, offset, member) for tp, offset in offsets.items()],
        )

    @staticmethod
    def not_owned(
        conn: sqlite3.Connection, group: str, member: str, tps: Sequence[TopicPartition]
    ) -> list[TopicPartition]:
        """Return those of `tps` that `member` does not own now (read in the caller's view)."""
        owned = set(
            conn.execute(
                "SELECT topic, partition FROM owners WHERE grp = ? AND member = ?",
                (group, member),
            )
        )
        return [tp for tp in tps if (tp.topic, tp.partition) not in owned]
