"""Run group workers until asked to stop; graceful first, abort on a second signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from tidings.gc_pause import serving_heap
from tidings.runtime.group_worker import GroupWorker
from tidings.runtime.status import StatusReporter

log = logging.getLogger("tidings.runner")


class Runner:
    """Starts every GroupWorker, waits for a stop request, and shuts them down in order."""

    def __init__(
        self,
        workers: Sequence[GroupWorker],
        *,
        grace: float,
        status: StatusReporter | None = None,
    ) -> None:
        self.workers = list(workers)
        self.grace = grace
        self.status = status
        """Publishes this runner's status snapshots while it serves (None: no reports)."""
        self._stop: asyncio.Event | None = None
        self._signals = 0
        self.aborted = False
        self.tune_heap = False
        """Tune the garbage collector while serving (`serving_heap`): for a process that
        does nothing else, as `App.run` and `tidings run` are."""

    def request_stop(self) -> None:
        """Ask for a graceful stop (thread-safe through the loop)."""
        if self._stop is not None:
            self._stop.set()

    def abort(self) -> None:
        """Leave at once: running handlers are not waited for and their events not committed."""
        self.aborted = True
        for worker in self.workers:
            worker.abort()
        self.request_stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second SIGINT aborts at once."""
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            self._signals += 1
            if self._signals == 1:
                log.warning(
                    "%s: stopping gracefully (up to %.0f s); press Ctrl-C again to abort",
                    signal.Signals(signum).name,
                    self.grace,
                )
                self.request_stop()
            elif signum == signal.SIGINT:
                log.warning("aborting: unfinished work is not committed")
                self.abort()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)

    async def serve(self) -> None:
        """Run until a stop request or a worker's fatal error (re-raised after shutdown)."""
        self._stop = asyncio.Event()
        for worker in self.workers:
            await worker.start()
        if self.status is not None:
            await asyncio.to_thread(self.status.start, self.workers)
        heap = serving_heap() if self.tune_heap else contextlib.nullcontext()
        try:
            with heap:
                while not self._stop.is_set():
                    failed = next((w for w in self.workers if w.error is not None), None)
                    if failed is not None:
                        break
                    try:
                        await asyncio.wait_for(self._stop.wait(), 0.2)
                    except TimeoutError:
                        pass
        finally:
            await asyncio.gather(*(w.stop(self.grace) for w in self.workers))
            if self.status is not None:
                await asyncio.to_thread(self.status.stop)
        errors = [w.error for w in self.workers if w.error is not None]
        if errors:
            raise errors[0]
