"""WAL checkpoints off the publishing thread.

In WAL mode a commit appends pages to ``tidings.db-wal``; a checkpoint copies them into the
database file and syncs it. SQLite runs that checkpoint inside whichever commit pushes the
WAL past 1,000 pages, so a bulk publish paid for it in its own commits. Here a daemon
thread checkpoints once about a megabyte has been written since the last checkpoint, so
the writers' own checkpoint finds little left to copy. The thread runs SQLite with the
GIL released, on the second core. `wal_autocheckpoint` stays at SQLite's 1,000 pages
(`BACKSTOP_PAGES`): with 4,096 the WAL grew between resets and made the end-to-end p99
at 1,000 events/s 15-17 ms instead of 7-9 ms (`python -m benchmarks --only
tidings-embedded,latency`), and it is the fallback whenever this thread is behind. A forked
child starts a thread of its own on its first large write.

Every write transaction counts (the store adds about two pages per commit), so a trickle of
small ones (offset commits, heartbeats, one-event publishes) is checkpointed as well. Under a
continuous writer a PASSIVE checkpoint never lets the WAL start over (new frames arrive
while it copies), so when the WAL holds more than `RESTART_FRAMES` the thread runs one
RESTART checkpoint: it waits at most `RESTART_WAIT_MS` for the write lock (or tries again
next round), holds it for those few milliseconds, and the WAL then stays within a few MiB
instead of growing to the backstop's 8 MiB. It takes no lock of this process (a forked
child could inherit it held).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final

logger = logging.getLogger("tidings.embedded")

BACKSTOP_PAGES: Final = 1000
"""`PRAGMA wal_autocheckpoint` of every connection (SQLite's default; 8 MiB of 8 KiB pages)."""
TRIGGER_BYTES: Final = 1 << 20
"""Bytes written since the last checkpoint that wake the checkpoint thread."""
RESTART_FRAMES: Final = 256
"""WAL frames (pages) above which a checkpoint restarts the WAL (2 MiB of 8 KiB pages)."""
RESTART_WAIT_MS: Final = 20
"""Milliseconds a RESTART checkpoint waits for readers before leaving it to the next round."""
PAUSE: Final = 0.02
"""Seconds the thread waits after waking, so that a burst of commits shares a checkpoint."""


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a thread of its own when enough was written.

    PASSIVE never waits for readers or writers: it copies what it can and returns. Errors
    (a full disk, a busy lock) are logged at debug level and left to the next round or to
    the writers' automatic checkpoint.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        discard: Callable[[sqlite3.Connection], None],
    ) -> None:
        self._connect = connect
        self._discard = discard
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self._owner = os.getpid()
        self.rounds = 0
        """Checkpoints run so far (for tests and diagnostics)."""

    def wrote(self, nbytes: int) -> None:
        """Count bytes just committed; wake the thread once they add up to a checkpoint."""
        if self._owner != os.getpid():
            self._forked()
        with self._lock:
            self._written += nbytes
            if self._written < TRIGGER_BYTES or self._closed:
                return
            self._written = 0
            if self._thread is None:
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="tidings-embedded-checkpoint", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _forked(self) -> None:
        """In a forked child: the parent's thread is gone and its locks may look held."""
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written = 0
        self._thread = None

    def _run(self) -> None:
        try:
            conn = self._connect()
            # A RESTART that finds a reader on an old snapshot gives up at once (and is
            # tried next round) rather than holding the write lock while it waits.
            conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        except Exception as exc:  # the writers' automatic checkpoint still runs
            logger.debug("Embedded checkpoint thread cannot open the store: %s", exc)
            return
        try:
            while True:
                self._wake.wait()
                time.sleep(PAUSE)
                self._wake.clear()
                if self._closed:  # after the clear: a close never goes unseen
                    return
                try:
                    (_busy, frames, _done) = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if frames > RESTART_FRAMES:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    self.rounds += 1
                except sqlite3.Error as exc:
                    logger.debug("Embedded WAL checkpoint failed (will retry): %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._discard(conn)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._lock:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
