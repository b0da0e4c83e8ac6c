"""Run an App's consumers on an in-memory broker with a fake clock, for users' tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from tidings.app import App
from tidings.backends.memory import MemoryBackend
from tidings.events import Event
from tidings.publisher import Published, TopicRef
from tidings.records import Record
from tidings.runtime.dead_letters import dlq_topic
from tidings.runtime.runner import Runner
from tidings.testing.clock import FakeClock


class Harness:
    """Swap an App onto an in-memory broker and a FakeClock while the harness is open.

    `publish` then `drain()` runs every consumer until all published events are handled;
    retry backoffs are skipped through by advancing the fake clock. `advance(timedelta)`
    moves time forward so delayed events fall due, then drains.
    """

    def __init__(self, app: App, *, groups: list[str] | None = None) -> None:
        self.app = app
        self.clock = FakeClock()
        self.backend = MemoryBackend(url="memory://harness", clock=self.clock)
        self.groups = groups
        self._saved: dict[str, Any] = {}
        self._running: contextlib.AbstractContextManager[Runner] | None = None
        self.runner: Runner | None = None

    def __enter__(self) -> Harness:
        app = self.app
        self._saved = {
            "backend": app._backend,
            "declared": set(app._declared),
            "clock": app.clock,
            "pclock": app.publisher.clock,
        }
        app._backend = self.backend
        app._declared.clear()
        app.clock = self.clock
        app.publisher.clock = self.clock
        if app.consumers:
            self._running = app.running(self.groups)
            self.runner = self._running.__enter__()
            for worker in self.runner.workers:
                worker.commit_interval = 0.005
                worker.poll_timeout = 0.005
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._running is not None:
            self._running.__exit__(exc_type, exc, tb)
        app = self.app
        app._backend = self._saved["backend"]
        app._declared = self._saved["declared"]
        app.clock = self._saved["clock"]
        app.publisher.clock = self._saved["pclock"]

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        return self.app.publish(topic, event, key=key, headers=headers, delay=delay, at=at)

    def _caught_up(self) -> bool:
        runner = self.runner
        if runner is None:
            return True
        if any(w.tracker.in_flight() for w in runner.workers):
            return False
        wanted = {w.group for w in runner.workers}
        for info in self.backend.groups():
            if info.group in wanted and any(p.lag for p in info.partitions):
                return False
        return True

    def drain(self, *, timeout: float = 10.0) -> None:
        """Run consumers until every published event is handled (skipping retry waits)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self._caught_up():
                time.sleep(0.01)
                if self._caught_up():
                    return
            now = time.monotonic()
            quiet_since = quiet_since or now
            due = self.clock.next_timer()
            if due is not None and now - quiet_since > 0.02:
                self.clock.advance(max(0.0, due - self.clock.time()))
                quiet_since = None
            time.sleep(0.002)
        raise TimeoutError(
            f"Consumers did not catch up within {timeout} s: a handler may be blocked, or a "
            "partition stopped (dead letters disabled); see the log."
        )

    def advance(self, by: timedelta | float) -> None:
        """Move the fake clock forward (delayed events fall due), then drain."""
        self.clock.advance(by)
        self.backend.release_due()
        self.drain()

    def records(self, topic: str) -> list[Record]:
        """Return every record stored in `topic`."""
        return list(self._read(topic))

    def dead_letters(self, topic: str, group: str) -> list[Record]:
        """Return the dead letters `group` wrote for events of `topic`."""
        return self.records(dlq_topic(topic, group))

    def _read(self, topic: str) -> Iterator[Record]:
        handle = self.backend.open_consumer(None, [topic], start="earliest", listener=None)
        try:
            while batch := handle.fetch(10_000, 0):
                yield from batch
        finally:
            handle.close()
