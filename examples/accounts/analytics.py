"""analytics (group ``analytics``): count account events per type in a local table.

A batch consumer: the handler receives up to `max_size` events at a time (waiting at most
`max_wait` for a batch to fill) and writes them in one SQLite transaction, which is far
cheaper than one write per event. The batch's offsets are committed only after the
handler returns, so a crash mid-batch replays the whole batch, never part of it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from tidings import App, Batch

from .events import AccountEvent, account_events

log = logging.getLogger("accounts.analytics")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counted (        -- what has been counted, so replays count once
    event_type TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (event_type, account_id)
);
CREATE TABLE IF NOT EXISTS event_counts (
    event_type TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""


class Analytics:
    """The analytics service's local table: how many events of each type happened."""

    def __init__(self, database: str = ":memory:") -> None:
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.batches = 0

    def record(self, events: list[AccountEvent]) -> None:
        """Count a batch of events in one transaction, each event at most once."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for event in events:
                    # A batch handler gets events, not their ids; an account has at most
                    # one event of each type, so (type, account) identifies an event.
                    new = self._db.execute(
                        "INSERT OR IGNORE INTO counted VALUES (?, ?)",
                        (event.event_type, event.account_id),
                    ).rowcount
                    if new:
                        self._db.execute(
                            "INSERT INTO event_counts VALUES (?, 1) ON CONFLICT (event_type) "
                            "DO UPDATE SET count = count + 1",
                            (event.event_type,),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.batches += 1

    def counts(self) -> dict[str, int]:
        """Return the table: event type -> count."""
        with self._lock:
            return dict(self._db.execute("SELECT event_type, count FROM event_counts"))

    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM counted WHERE event_type = ? AND account_id = ?",
                (event_type, account_id),
            ).fetchone()
            return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def register(app: App, *, batch: Batch | None = None) -> Analytics:
    """Declare the analytics consumer on `app`; return the service's state."""
    analytics = Analytics()

    # A plain `def` handler: tidings runs it in a worker thread, off the event loop,
    # which suits blocking calls such as sqlite3.
    @app.consumer(
        account_events, group="analytics", batch=batch or Batch(max_size=500, max_wait=0.5)
    )
    def count_events(events: list[AccountEvent]) -> None:
        """Add a batch of account events to the counts."""
        analytics.record(events)
        log.info("counted a batch of %d event(s); totals %s", len(events), analytics.counts())

    return analytics
