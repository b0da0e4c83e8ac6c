"""Wake idle consumers when the store changes, instead of polling it.

Every process that writes the store appends to ``tidings.db-wal`` with ``write()``, which
Linux reports through inotify. One daemon thread per backend (started by the first consumer
that waits) blocks on an inotify watch of the data directory and bumps a counter on every
change; consumers wait on a condition for the counter to move (or a deadline), then look at
``PRAGMA data_version`` to see whether anything was committed. This process's own produces
bump the counter directly, without the round trip through the kernel. An idle consumer thus
sleeps until something happens: no periodic wake-ups beyond the runtime's own fetch timeout.

Where inotify is not available (another OS, or the per-user limit of inotify instances is
reached), `active` is False and consumers poll with short sleeps as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import sys
import threading
from pathlib import Path
from typing import Final

logger = logging.getLogger("tidings.embedded")

IN_MODIFY: Final = 0x002
IN_CLOSE_WRITE: Final = 0x008
IN_CREATE: Final = 0x100
IN_NONBLOCK: Final = 0o4000
IN_CLOEXEC: Final = 0o2000000


def _inotify_fd(directory: Path) -> int | None:
    """Return an inotify descriptor watching `directory` for writes, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    mask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE
    if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
        os.close(fd)
        return None
    return fd


class Changes:
    """A counter of changes to one data directory, and a way to wait for the next one."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self.count = 0
        """Bumped on every change seen (read it before checking the store, then `wait`)."""
        self.active = False
        """Whether changes are reported (else callers must poll)."""
        self._started = False
        self._closed = False
        self._fd: int | None = None
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def start(self) -> bool:
        """Start watching (once; idempotent); return whether changes will be reported."""
        if self._pid != os.getpid():  # forked: the parent's thread is not ours
            self._reset()
        with self._cond:
            if self._started:
                return self.active
            self._started = True
            if self._closed:
                return False
            fd = _inotify_fd(self._directory)
            if fd is None:
                logger.debug("No inotify for %s: consumers poll the store", self._directory)
                return False
            self._fd = fd
            self._stop_r, self._stop_w = os.pipe()
            self._thread = threading.Thread(
                target=self._watch, name="tidings-embedded-changes", daemon=True
            )
            self._thread.start()
            self.active = True
            return True

    def notify(self) -> None:
        """Report a change made by this process (wakes this process's waiting consumers)."""
        if self._pid != os.getpid():  # forked: the parent's lock may have been held
            self._reset()
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Return once `count` differs from `seen`, or after `timeout` seconds."""
        with self._cond:
            if self.count == seen and timeout > 0:
                self._cond.wait(timeout)

    def _watch(self) -> None:
        fd, stop = self._fd, self._stop_r
        assert fd is not None
        try:
            while True:
                ready, _, _ = select.select([fd, stop], [], [])
                if stop in ready:
                    return
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 65536):
                        pass
                self.notify()
        except OSError as exc:  # the descriptor went away: fall back to polling
            logger.debug("Embedded change watch stopped: %s", exc)
        finally:
            self.active = False
            self.notify()

    def close(self) -> None:
        """Stop the watching thread and release its descriptors."""
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid():
            os.write(self._stop_w, b"x")
            thread.join(5.0)
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd, self._stop_r, self._stop_w = None, -1, -1
        self.active = False
