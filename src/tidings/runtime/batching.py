"""Batch consumers: hand the handler a list, commit after the whole list.

Built on the route's pipeline through its public methods: each event of a batch ends in one
Outcome that `Route.settle` acts on. A failing batch is retried whole, in place, under the
consumer's Retry policy. When its attempts are spent, each event of the batch is retried on
its own (as a batch of one, under the same policy), so only the events that still fail end
as the consumer's failure strategy says (dead letter or stop) and the rest commit.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tidings.exceptions import DecodeError
from tidings.instrumentation import tracing
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
        first = await route.next_ready()
        if first is None:
            return
        items = [first[1]]
        deadline = loop.time() + batch.wait_seconds
        while len(items) < batch.max_size:
            more = await route.more_ready(deadline)
            if more is None:
                break
            items.append(more[1])
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
    good: list[Delivery] = []
    for d in items:
        if not d.run.part.live:
            continue
        try:
            d.event = route.decode(d)
        except DecodeError as exc:
            await route.settle(None, d, route.strategy.gives_up_with, exc, exc.reason)
            continue
        if d.event is None:
            await route.settle(None, d, Outcome.SKIP)
            continue
        good.append(d)
    if not good:
        return
    failed = await _attempt(route, good)
    if failed is None:
        return
    if len(good) == 1:
        await route.settle(None, good[0], route.strategy.gives_up_with, failed)
        return
    for d in good:
        d.attempt = 1
        error = await _attempt(route, [d])
        if error is not None:
            await route.settle(None, d, route.strategy.gives_up_with, error)


async def _attempt(route: Route, batch: list[Delivery]) -> BaseException | None:
    """Run the handler on `batch` until it succeeds (each event settled ACK) or the retry
    policy gives up (returns the last error; nothing settled)."""
    spec, signals = route.spec, route.signals
    last = batch[-1]
    while True:
        if route.stopping or not last.run.part.live:
            raise asyncio.CancelledError  # abandoned: redelivered after restart/rebalance
        ctx = route.context(last) if spec.handler.takes_context else None
        t0 = time.perf_counter()
        try:
            if route.tracer is None:
                await route.call([d.event for d in batch], ctx)
            else:
                records = [d.record for d in batch]
                with tracing.batch_span(route.tracer, records, spec.topic, route.owner.group):
                    await route.call([d.event for d in batch], ctx)
        except Exception as exc:
            if signals.active:
                signals.batch_handled(spec.topic, len(batch), time.perf_counter() - t0, "error")
            route.stats.failed_attempts += 1
            if route.strategy.judge(exc, last.attempt) is not Outcome.RETRY:
                return exc
            route.stats.retried += 1
            delay = spec.retry.delay_before(last.attempt + 1)
            for d in batch:
                d.attempt += 1
            if signals.active:
                signals.retry_scheduled(last, last.attempt, delay, in_place=True)
            await route.owner.sleep(delay)
            continue
        if signals.active:
            signals.batch_handled(spec.topic, len(batch), time.perf_counter() - t0, "ack")
        route.stats.batches += 1
        for d in batch:
            await route.settle(None, d, Outcome.ACK)
        return None
