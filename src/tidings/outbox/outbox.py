"""The transactional outbox: publish in the service's own database transaction.

`Outbox.publish(session, ...)` encodes the event exactly as `App.publish` would and keeps
the record with the session. When the session commits, the records are inserted into
``tidings_outbox`` as the last statements of that transaction: committed, the relay will
send them; rolled back, nothing was ever written.

Order per key. Writers that publish the same key serialize for the last instant of their
transactions: on PostgreSQL each transaction takes a transaction-scoped advisory lock per
key (in sorted order, so two transactions never deadlock on them) before it inserts, and
holds it until its commit is visible; SQLite has one writer. So, per key, a later commit
always has higher ids, and the relay (one leader at a time) sends rows in id order.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from tidings.backends.base import Backend
from tidings.events import Event
from tidings.exceptions import ConfigurationError
from tidings.outbox.tables import (
    LOCK_CLASS,
    NOTIFY_CHANNEL,
    OUTBOX,
    OUTBOX_METADATA,
    AnyEngine,
    create,
    dialect_of,
    encode_headers,
    sync_engine_for,
)
from tidings.publisher import Publisher, TopicRef

_PENDING = "tidings.outbox.pending"
# One round trip: take the per-key locks in the array's (sorted) order, then, once, queue
# the NOTIFY that PostgreSQL delivers to listening relays when the transaction commits.
_LOCK_AND_NOTIFY = text(
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM (SELECT count(*) FROM "
    f"(SELECT pg_advisory_xact_lock({LOCK_CLASS}, k) FROM unnest(CAST(:keys AS int4[])) AS k)"
    " AS locked) AS once"
)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A snapshot of the outbox table: rows not yet relayed, and the age of the oldest."""

    backlog: int
    oldest_age: float | None
    """Seconds since the oldest unrelayed row was committed (None when the backlog is 0)."""


class Outbox:
    """Publishes events inside SQLAlchemy sessions; its relay moves them to the broker.

    Made by `app.outbox(engine)`; `tidings run` and `tidings relay` run its relay.
    """

    def __init__(
        self,
        publisher: Publisher,
        backend: Callable[[], Backend],
        engine: AnyEngine,
        *,
        keep: timedelta | None = None,
        batch: int = 1000,
        poll: float = 0.5,
    ) -> None:
        self.dialect = dialect_of(engine)
        if batch < 1:
            raise ConfigurationError(f"Outbox batch must be >= 1 (got {batch}).")
        if poll <= 0:
            raise ConfigurationError(f"Outbox poll must be positive seconds (got {poll}).")
        self.engine = engine
        self.keep = keep
        self.batch = batch
        self.poll = poll
        self._publisher = publisher
        self._backend = backend
        self.committed = 0
        """Events this process committed through the outbox (counted after each commit)."""
        self.relayed = 0
        """Events the relays of this process sent and then deleted (or marked) as relayed."""
        self._count_lock = threading.Lock()
        self.wake = threading.Event()
        """Set when this process commits outbox rows: an in-process relay starts at once."""

    @property
    def metadata(self) -> MetaData:
        """The MetaData holding ``tidings_outbox`` (for Alembic's target_metadata)."""
        return OUTBOX_METADATA

    def create_tables(self) -> None:
        """Create ``tidings_outbox`` if it is missing (and turn on WAL mode on SQLite)."""
        create(self.engine, OUTBOX_METADATA)

    def backend(self) -> Backend:
        """The app's broker connection (opened on first use)."""
        return self._backend()

    def publish(
        self,
        session: Session | AsyncSession,
        topic: TopicRef,
        event: Event,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> str:
        """Publish `event` when `session`'s transaction commits; return its event id.

        Takes the keyword arguments of `App.publish`. Nothing is written before the commit
        (works the same on Session and AsyncSession, without awaiting); the rows are
        inserted as the transaction's last statements. Rolled back, nothing is published.

        Raises:
            EventTooLarge: the encoded event exceeds the app's max_event_bytes.
            ConfigurationError: bad delay/at, or `event` is not an Event.
        """
        record, event_id = self._publisher.build(
            topic, event, key=key, headers=headers, delay=delay, at=at
        )
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        if not isinstance(sync, Session):
            raise ConfigurationError(
                f"outbox.publish takes a SQLAlchemy Session or AsyncSession, got "
                f"{type(session).__name__}."
            )
        pending: list[_Pending] = sync.info.setdefault(_PENDING, [])
        row = {
            "topic": record.topic,
            "key": record.key,
            "value": record.value,
            "headers": encode_headers(record.headers),
            "deliver_at": record.deliver_at,
        }
        pending.append((self, row, sync.get_nested_transaction() or sync.get_transaction()))
        return event_id

    def count_relayed(self, n: int) -> None:
        """Add `n` to `relayed` (relays call it after each committed pass)."""
        with self._count_lock:
            self.relayed += n

    def statistics(self) -> OutboxStats:
        """Count the rows not yet relayed and the age of the oldest (one query)."""
        sync = sync_engine_for(self.engine)
        try:
            with sync.connect() as conn:
                count, oldest = conn.execute(
                    select(func.count(), func.min(OUTBOX.c.created_at)).where(
                        OUTBOX.c.relayed_at.is_(None)
                    )
                ).one()
        finally:
            sync.dispose()
        age = None if oldest is None else max(0.0, time.time() - oldest)
        return OutboxStats(int(count), age)


def key_locks(keys: list[bytes | None]) -> list[int]:
    """Sorted, distinct 32-bit lock ids for the non-empty keys (sorted: no deadlocks)."""
    ids = {
        int.from_bytes(hashlib.blake2b(k, digest_size=4).digest(), "big", signed=True)
        for k in keys
        if k is not None
    }
    return sorted(ids)


_Pending = tuple[Outbox, dict[str, Any], SessionTransaction | None]
"""An outbox row waiting for its commit, with the (sub)transaction it was published in."""
_INSERTED = "tidings.outbox.inserted"
"""Outboxes of the rows inserted by the committing transaction (counted once it commits)."""


def _inside(tx: SessionTransaction | None, target: SessionTransaction) -> bool:
    while tx is not None:
        if tx is target:
            return True
        tx = tx.parent
    return False


@event.listens_for(Session, "before_commit")
def _insert_pending(session: Session) -> None:
    """Insert the session's outbox rows, in publish order, as the last statements of its
    transaction (the outermost one: a released savepoint keeps its rows pending, and the
    rollback of a savepoint drops the rows published inside it)."""
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if not pending or session.get_nested_transaction() is not None:
        return
    session.info[_PENDING] = []
    box = pending[0][0]
    now = time.time()
    rows = [{**row, "created_at": now} for _, row, _ in pending]
    if box.dialect == "postgresql":
        session.execute(_LOCK_AND_NOTIFY, {"keys": key_locks([row["key"] for row in rows])})
    session.execute(insert(OUTBOX), rows)
    session.info[_INSERTED] = [outbox for outbox, _, _ in pending]


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A savepoint rolled back: forget what was published inside it."""
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending and previous_transaction.parent is not None:
        session.info[_PENDING] = [p for p in pending if not _inside(p[2], previous_transaction)]


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    counts: dict[Outbox, int] = {}
    for outbox in session.info.pop(_INSERTED, []):
        counts[outbox] = counts.get(outbox, 0) + 1
    for outbox, n in counts.items():
        with outbox._count_lock:
            outbox.committed += n
        outbox.wake.set()


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_INSERTED, None)
