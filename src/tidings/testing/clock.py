"""A clock that moves only when told to, with timers that fire as it passes them."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import timedelta


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Wall and monotonic time that advance only through `advance()`; thread-safe.

    Retry backoffs and batch waits scheduled through `call_later` fire when the clock is
    advanced past them, so tests of retries and delays take no real time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._advanced = 0.0
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        # Real waits in the runtime (polling, grace periods) must still end: monotonic time
        # is real time plus everything advance() added.
        return time.monotonic() + self._advanced

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._now + max(0.0, delay), callback)
        with self._lock:
            heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def next_timer(self) -> float | None:
        """Return when the earliest pending timer fires, or None."""
        with self._lock:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            return self._timers[0][0] if self._timers else None

    def advance(self, by: float | timedelta) -> None:
        """Move time forward, firing every timer that falls due on the way."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError("A clock only moves forward.")
        target = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target
        self._advanced += seconds
