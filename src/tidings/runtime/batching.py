"""Batch consumers: hand the handler a list, commit after the whole list.

A failing batch is retried whole under the consumer's Retry policy. When its attempts are
spent, each event of the batch is retried on its own (as a batch of one, under the same
policy), so only the events that still fail go to the dead letters and the rest commit.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tidings.exceptions import DecodeError
from tidings.instrumentation import tracing
from tidings.instrumentation.catalogue import BatchHandled
from tidings.runtime.outcome import Outcome

if TYPE_CHECKING:
    from tidings.runtime.delivery import Delivery
    from tidings.runtime.route import Route


async def run_batches(route: Route) -> None:
    """Collect up to max_size ready deliveries (waiting at most max_wait) and run them."""
    batch = route.spec.batch
    assert batch is not None
    loop = asyncio.get_running_loop()
    while True:
        first = await route._next()
        if first is None:
            return
        items = [first[1]]
        deadline = loop.time() + batch.wait_seconds
        ready = route.lanes.ready
        while len(items) < batch.max_size:
            if ready:
                items.append(ready.popleft()[1])
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or route._stopping:
                break
            route._wake.clear()
            try:
                await asyncio.wait_for(route._wake.wait(), remaining)
            except TimeoutError:
                break
        parts = {d.run.part for d in items}
        route.running += 1
        for part in parts:
            part.running += 1
        try:
            await _run(route, items)
        finally:
            route.running -= 1
            for part in parts:
                part.running -= 1


async def _run(route: Route, items: list[Delivery]) -> None:
    finish = route.owner.tracker.finish_at
    good: list[Delivery] = []
    for d in items:
        if not d.run.part.live:
            continue
        try:
            d.event = route.decode(d)
        except DecodeError as exc:
            await route._settle(None, d, Outcome.DEAD_LETTER, exc, exc.reason)
            continue
        if d.event is None:
            route.stats.skipped += 1
            if route.obs.active:
                route.skipped(d.record)
            finish(d.run, d.index)
            continue
        good.append(d)
    if not good:
        return
    failed = await _attempt(route, good)
    if failed is None:
        return
    if len(good) == 1:
        await route._settle(None, good[0], Outcome.DEAD_LETTER, failed, "handler_error")
        return
    for d in good:
        d.attempt = 1
        error = await _attempt(route, [d])
        if error is not None:
            await route._settle(None, d, Outcome.DEAD_LETTER, error, "handler_error")


async def _attempt(route: Route, batch: list[Delivery]) -> BaseException | None:
    """Run the handler on `batch` until it succeeds or the retry policy gives up."""
    spec = route.spec
    last = batch[-1]
    while True:
        if route._stopping or not last.run.part.live:
            raise asyncio.CancelledError  # abandoned: redelivered after restart/rebalance
        ctx = route.context(last) if spec.handler.takes_context else None
        t0 = time.perf_counter()
        try:
            if route.tracer is None:
                await route._call([d.event for d in batch], ctx)
            else:
                records = [d.record for d in batch]
                with tracing.batch_span(route.tracer, records, spec.topic, route.owner.group):
                    await route._call([d.event for d in batch], ctx)
        except Exception as exc:
            _handled(route, batch, time.perf_counter() - t0, "error")
            route.stats.failed_attempts += 1
            if not spec.retry.should_retry(exc, last.attempt):
                return exc
            route.stats.retried += 1
            delay = spec.retry.delay_before(last.attempt + 1)
            for d in batch:
                d.attempt += 1
            route.retry_scheduled(last, last.attempt, delay, in_place=True)
            await route.owner.sleep(delay)
            continue
        _handled(route, batch, time.perf_counter() - t0, "ack")
        route.stats.handled += len(batch)
        route.stats.batches += 1
        finish = route.owner.tracker.finish_at
        for d in batch:
            finish(d.run, d.index)
        return None


def _handled(route: Route, batch: list[Delivery], duration: float, outcome: str) -> None:
    if route.obs.active:
        route.obs.emit(
            BatchHandled(route.owner.group, route.spec.topic, len(batch), duration, outcome)
        )
