"""The idempotent inbox: handle each event once per group, in the handler's transaction.

`inbox.claim(session, ctx)` inserts ``(group, event id)`` into ``tidings_inbox`` in the
handler's own transaction (INSERT ... ON CONFLICT DO NOTHING) and returns False when the
row was already there: the event was handled and committed before, so the handler skips
it (its offset still commits). If the handler fails, its transaction rolls back and the
claim with it, so a retried or dead-lettered event is never marked handled.

Rows are kept `keep` (7 days by default) and deleted by `cleanup()`, which `tidings run`
calls in the background. A redelivery later than `keep` after the first handling would be
handled again; keep the window longer than any replay you plan.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import MetaData, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tidings.context import Context
from tidings.exceptions import ConfigurationError
from tidings.outbox.tables import INBOX, INBOX_METADATA, AnyEngine, create, dialect_of
from tidings.outbox.tables import sync_engine_for as _sync_engine_for

log = logging.getLogger("tidings.outbox")
DEFAULT_KEEP = timedelta(days=7)


class Inbox:
    """Records which events each group handled, in the handler's own transaction.

    Made by `app.inbox(engine)`. `skipped` counts the duplicates this process skipped.
    """

    def __init__(self, engine: AnyEngine, *, keep: timedelta = DEFAULT_KEEP) -> None:
        self.dialect = dialect_of(engine)
        if keep.total_seconds() <= 0:
            raise ConfigurationError(f"Inbox keep must be positive (got {keep}).")
        self.engine = engine
        self.keep = keep
        self.claimed = 0
        self.skipped = 0
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # RETURNING rather than rowcount: drivers disagree on rowcount after DO NOTHING.
        self._insert = (
            insert(INBOX)
            .on_conflict_do_nothing(index_elements=[INBOX.c.group_name, INBOX.c.event_id])
            .returning(INBOX.c.event_id)
        )

    @property
    def metadata(self) -> MetaData:
        """The MetaData holding ``tidings_inbox`` (for Alembic's target_metadata)."""
        return INBOX_METADATA

    def create_tables(self) -> None:
        """Create ``tidings_inbox`` if it is missing."""
        create(self.engine, INBOX_METADATA)

    def claim(self, session: Session, ctx: Context) -> bool:
        """Record `ctx`'s event as handled by its group in `session`'s transaction.

        Returns True the first time (handle the event), False when the group already
        handled it (skip it). Use `claim_async` with an AsyncSession.
        """
        if isinstance(session, AsyncSession):
            raise ConfigurationError(
                "inbox.claim() got an AsyncSession; use `await inbox.claim_async(session, ctx)`."
            )
        return self._count(session.execute(self._insert, self._row(ctx)).first() is not None)

    async def claim_async(self, session: AsyncSession, ctx: Context) -> bool:
        """Awaitable twin of `claim` for an AsyncSession."""
        result = await session.execute(self._insert, self._row(ctx))
        return self._count(result.first() is not None)

    def cleanup(self) -> int:
        """Delete rows older than `keep`; return how many."""
        engine = _sync_engine_for(self.engine)
        try:
            with engine.begin() as conn:
                result = conn.execute(
                    delete(INBOX).where(
                        INBOX.c.handled_at < time.time() - self.keep.total_seconds()
                    )
                )
            return int(result.rowcount)
        finally:
            engine.dispose()

    @contextlib.contextmanager
    def running(self, every: float = 3600.0) -> Iterator[Inbox]:
        """Clean up in a background thread (now, then every `every` seconds) while inside."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    removed = self.cleanup()
                    if removed:
                        log.info("inbox: removed %d rows older than %s", removed, self.keep)
                except Exception as exc:
                    log.warning(
                        "inbox cleanup failed (%s: %s); retrying later", type(exc).__name__, exc
                    )
                stop.wait(every)

        thread = threading.Thread(target=loop, name="tidings-inbox-cleanup", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    @staticmethod
    def _row(ctx: Context) -> dict[str, object]:
        return {"group_name": ctx.group, "event_id": ctx.event_id, "handled_at": time.time()}

    def _count(self, inserted: bool) -> bool:
        if inserted:
            self.claimed += 1
            return True
        self.skipped += 1
        return False
