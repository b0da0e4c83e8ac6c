"""Meters the contenders share, so every one is timed the same way.

- `Drain`: counts handled events; the clock starts when the last warm-up event is handled
  and stops at the last one, so group join and warm-up are excluded (join time is kept).
  The process's CPU time (every thread: `time.process_time`) is read at the same two
  moments: `cpu_window_s`, the CPU the measured events cost.
- `Latencies`: end-to-end latency (now - the event's send stamp) of events past warm-up.
- `pace` / `apace`: send at the intended times of a fixed-rate schedule; latency producers
  never wait for one event's acknowledgement before sending the next (`InFlight`), so the
  producer's round trip does not throttle the offered rate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any


class Drain:
    """Throughput of handled events past `warmup`; `done` is set when `total` were handled."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup = warmup
        self.total = total
        self.count = 0
        self.created = time.perf_counter()
        self.first: float | None = None
        self.start: float | None = None if warmup else self.created
        self.end: float | None = None
        self.cpu: list[float] = [] if warmup else [time.process_time()]
        self.done = threading.Event()

    def tick(self, n: int = 1) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        before = self.count
        self.count = before + n
        if self.start is None and self.count >= self.warmup:
            self.start = time.perf_counter()
            self.cpu.append(time.process_time())
        if self.count >= self.total and self.end is None:
            self.end = time.perf_counter()
            self.cpu.append(time.process_time())
            self.done.set()

    def result(self) -> dict[str, Any]:
        if self.end is None or self.start is None:
            return {"error": f"handled {self.count} of {self.total} events", "count": self.count}
        measured = self.total - self.warmup
        elapsed = self.end - self.start
        join = (self.first or self.created) - self.created
        return {
            "events": measured,
            "seconds": elapsed,
            "events_per_s": measured / elapsed,
            "join_s": join,
            "count": self.count,
            "cpu_window_s": self.cpu[-1] - self.cpu[0],
        }


class Latencies:
    """End-to-end latencies in ms of events with ``seq >= warmup``; done after `total`.

    If fewer than `total` arrive before the consumer gives up, the result says so
    (``incomplete``, with the delivered rate); its percentiles then cover whatever arrived,
    warm-up included if nothing else did.
    """

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup = warmup
        self.total = total
        self.count = 0
        self.samples: list[float] = []
        self.early: list[float] = []
        self.started = time.monotonic()
        self.done = threading.Event()

    def record(self, seq: int, stamp_ns: int, now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        self.record_seconds(seq, (now - stamp_ns) / 1e9)

    def record_seconds(self, seq: int, late_s: float) -> None:
        """Record a latency (or lateness past a due time) given in seconds."""
        if seq < 0:  # a connection warm-up event, not part of the schedule
            return
        (self.samples if seq >= self.warmup else self.early).append(late_s * 1000)
        self.count += 1
        if self.count >= self.total:
            self.done.set()

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"received": self.count, "expected": self.total}
        if self.samples:
            out |= summarize(self.samples)
        else:
            out |= summarize(self.early) | {"warmup_included": True}
        if self.count < self.total:
            elapsed = time.monotonic() - self.started
            out |= {"incomplete": True, "delivered_per_s": self.count / elapsed}
        return out


def summarize(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0}
    s = sorted(samples)
    return {
        "samples": len(s),
        "p50_ms": s[len(s) // 2],
        "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))],
        "max_ms": s[-1],
    }


def _schedule(total: int, rate: int) -> Iterator[tuple[int, int, float]]:
    """Yield (i, intended send time in ns, seconds until then) at `rate` per second."""
    start = time.time_ns()
    step = 1_000_000_000 // rate
    for i in range(total):
        due = start + i * step
        yield i, due, (due - time.time_ns()) / 1e9


def pace(total: int, rate: int) -> Iterator[tuple[int, int]]:
    """Yield (i, intended send time in ns) at `rate` per second, sleeping until each is due.

    Stamping the intended time (not the actual one) keeps a stalled sender from hiding its
    own queueing (coordinated omission).
    """
    for i, due, wait in _schedule(total, rate):
        if wait > 0:
            time.sleep(wait)
        yield i, due


async def apace(total: int, rate: int) -> AsyncIterator[tuple[int, int]]:
    """`pace` for asyncio producers: awaits instead of sleeping the thread."""
    for i, due, wait in _schedule(total, rate):
        if wait > 0:
            await asyncio.sleep(wait)
        yield i, due


class InFlight:
    """Tasks started at their send time, at most `limit` unfinished (the oldest awaited).

    `max_lag_ms` is how far behind its schedule the sender fell (0 if it kept up): a
    latency figure is only meaningful if the producer offered the intended rate.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self.tasks: deque[asyncio.Future[Any]] = deque()
        self.max_lag_ms = 0.0

    async def add(self, awaitable: Awaitable[Any], due_ns: int) -> None:
        self.max_lag_ms = max(self.max_lag_ms, (time.time_ns() - due_ns) / 1e6)
        self.tasks.append(asyncio.ensure_future(awaitable))
        while self.tasks and (self.tasks[0].done() or len(self.tasks) > self.limit):
            await self.tasks.popleft()

    async def drain(self) -> None:
        while self.tasks:
            await self.tasks.popleft()


def wait_for(done: threading.Event, timeout: float, poll: Callable[[], None] | None = None) -> bool:
    """Wait for `done` (calling `poll` between waits, if given) up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if poll is not None:
            poll()
        done.wait(min(left, 0.05))
    return True
