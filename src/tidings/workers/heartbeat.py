"""A worker's heartbeat: how long its poll loops have gone without turning, over a pipe.

Each group's poll thread marks every turn (`WorkerView.seconds_since_poll`); a small thread
in the worker reads those marks twice a second and writes one line to the supervisor:
``beat <seconds since the stalest poll loop turned> <1 if every group joined>``. A handler
that runs long does not hold the poll loop (it keeps turning, its partition paused), so it
never looks stuck; a poll loop that stops turning, or a stopped process, does. When the
worker begins its graceful stop it writes ``stopping`` once, so the supervisor waits for
the drain instead of judging the beat. If the supervisor is gone (the pipe is closed) the
worker stops itself gracefully.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from tidings.instrumentation.catalogue import WorkerStarted, WorkerStopping, WorkerView
from tidings.instrumentation.dispatch import Listeners

log = logging.getLogger("tidings.workers")

INTERVAL = 0.5
"""Seconds between two beats."""


class Heartbeat:
    """Writes this worker's beat to `fd` from a daemon thread until the pipe closes."""

    def __init__(self, fd: int, *, interval: float = INTERVAL) -> None:
        self.fd = fd
        self.interval = interval
        self._views: dict[str, WorkerView] = {}
        self._stopping = False
        self._said_stopping = False
        self._gone = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tidings-heartbeat", daemon=True)
        os.set_blocking(fd, False)

    def watch(self, listeners: Listeners) -> None:
        """Follow the groups this process starts (through the catalogue)."""
        listeners.on(WorkerStarted, self._started)
        listeners.on(WorkerStopping, self._stop)

    def start(self) -> None:
        self._thread.start()

    def _started(self, event: WorkerStarted) -> None:
        self._views[event.group] = event.worker

    def _stop(self, event: WorkerStopping) -> None:
        self._stopping = True

    def line(self) -> bytes:
        """Return the next message: ``stopping`` once a group stops, else the beat."""
        if self._stopping:
            return b"stopping\n"
        views = list(self._views.values())
        stale = max((v.seconds_since_poll() for v in views), default=0.0)
        ready = bool(views) and all(v.joined and v.error is None for v in views)
        return f"beat {stale:.3f} {int(ready)}\n".encode()

    def _run(self) -> None:
        while not self._gone.wait(self.interval):
            message = self.line()
            if message == b"stopping\n":
                if self._said_stopping:
                    continue
                self._said_stopping = True
            try:
                os.write(self.fd, message)
            except BlockingIOError:
                pass  # the supervisor is busy; the next beat says the same
            except OSError:
                self._gone.set()
                if not self._stopping:
                    log.warning("the supervisor is gone; stopping gracefully")
                    os.kill(os.getpid(), signal.SIGTERM)
