"""Dispatch for one consumer: queue fetched records in key order, run the handler, settle.

Every exit of a handler (returned, raised, not for this consumer, undecodable) becomes one
`Outcome`, and `Route.settle` acts on it: ACK and SKIP finish the event, RETRY and the final
outcomes (DEAD_LETTER or STOP) go through the consumer's `FailureStrategy`, chosen when it
was registered (runtime/failures.py). Catalogue events are built in runtime/signals.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic_core import SchemaValidator

from tidings.context import Context
from tidings.events import Event
from tidings.exceptions import DecodeError
from tidings.instrumentation import tracing
from tidings.instrumentation.dispatch import Listeners
from tidings.runtime.commit_tracker import Run
from tidings.runtime.delivery import Delivery, context, decode
from tidings.runtime.handlers import call_handler
from tidings.runtime.intake import Intake
from tidings.runtime.lanes import Lanes
from tidings.runtime.outcome import Outcome
from tidings.runtime.owner import Cancellable, RouteOwner
from tidings.runtime.signals import Signals
from tidings.runtime.spec import ConsumerSpec
from tidings.runtime.stats import ConsumerStats
from tidings.wire import H_ID, schema_uri

Ready = tuple[Hashable | None, Delivery]


class Route:
    """Runs one consumer's handler over the records of its topic.

    By default (`concurrency=None`) each partition runs one event at a time in offset
    order, and partitions run independently: a worker task per partition with work. With
    `concurrency=N`, up to N events run at once, never two of one key, always in fetch order
    per key. A failing event waits out its backoff parked (it takes no worker), holding back
    only its partition (or key). Work of revoked partitions is dropped before it starts.
    """

    def __init__(self, spec: ConsumerSpec, owner: RouteOwner) -> None:
        self.spec = spec
        self.owner = owner
        self.strategy = spec.failures
        self.stats = ConsumerStats()
        self.lanes: Lanes[Delivery] = Lanes()
        self.running = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._parked: set[Cancellable] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._by_partition = spec.concurrency is None and spec.batch is None
        handler = spec.handler
        if not handler.is_async:
            # By partition, threads start on demand: at most one per partition handled now.
            self._executor = ThreadPoolExecutor(
                max_workers=spec.concurrency or 1024, thread_name_prefix=f"tidings-{spec.group}"
            )
        self._single = handler.single_class()
        self._types = handler.type_names if handler.accepts is not None else None
        self._finish = owner.tracker.finish_at
        listeners: Listeners = getattr(owner, "listeners", None) or Listeners()
        self.signals = Signals(owner.group, listeners)
        self.intake = Intake(
            topic=spec.topic,
            group=owner.group,
            types=self._types,
            by_partition=self._by_partition,
            keyed=spec.batch is None,
            lanes=self.lanes,
            stats=self.stats,
            signals=self.signals,
            finish=self._finish,
            now=owner.time,
        )
        plain = handler.is_async and not handler.takes_context and spec.timeout is None
        self._fast: Callable[[bytes], Event] | None = None
        self._schema = schema_uri(self._single) if self._single is not None else None
        if self._single is not None and plain and spec.batch is None:
            validator = self._single.__pydantic_validator__  # skips a Python frame per event
            if isinstance(validator, SchemaValidator):
                self._fast = validator.validate_json
            else:  # not built yet (forward references): pydantic builds it on first use
                self._fast = self._single.model_validate_json
        self.tracer = tracing.tracer()  # None unless a tracer provider is configured

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for _ in range(self.spec.concurrency or 1):
            self._spawn()

    def _spawn(self) -> None:
        """Start one more worker task; its unexpected end stops the app (owner.fail)."""
        body = self._batch_worker if self.spec.batch is not None else self._worker
        task = asyncio.create_task(body(), name=f"{self.spec.name}#{len(self._tasks)}")
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        if task.cancelled():
            if self._stopping:
                return
            error: BaseException = asyncio.CancelledError("cancelled from inside a handler")
        else:
            ended = task.exception()
            if ended is None:
                return  # workers return only once stopping
            error = ended
        self.owner.fail(error, f"worker {task.get_name()}")

    @property
    def stopping(self) -> bool:
        """Whether shutdown began: no new work starts."""
        return self._stopping

    def begin_shutdown(self) -> None:
        """Start no new work; parked retries are abandoned (redelivered after restart)."""
        self._stopping = True
        for handle in self._parked:
            handle.cancel()
        self._parked.clear()
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- intake ------------------------------------------------------------------------

    def submit_run(self, run: Run) -> None:
        """Take a fetched run of one partition (on the event loop thread): queue it in
        lanes (runtime/intake.py), start a worker for a partition that has none."""
        self.intake.submit(run)
        if self._by_partition and len(self.lanes.busy) > len(self._tasks):
            self._spawn()  # a worker per partition with work: none waits behind another
        if self.lanes.ready and not self._wake.is_set():
            self._wake.set()

    # -- what batching (and the failure strategies) build on ------------------------------

    async def next_ready(self) -> Ready | None:
        """Wait for the next ready delivery; None once shutting down."""
        while True:
            if self._stopping:
                return None
            ready = self.lanes.ready
            if ready:
                return ready.popleft()
            self._wake.clear()
            await self._wake.wait()

    async def more_ready(self, deadline: float) -> Ready | None:
        """Return a ready delivery, waiting until `deadline` (loop time) at most; None if
        none came in time or shutdown began."""
        loop = asyncio.get_running_loop()
        while True:
            ready = self.lanes.ready
            if ready:
                return ready.popleft()
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stopping:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return None

    def wake(self) -> None:
        """Wake a waiting worker (work became ready outside `submit_run`)."""
        self._wake.set()

    def done(self, lane: Hashable | None, d: Delivery) -> None:
        """`d` is finished: release its lane's next event and let its offset commit."""
        self.lanes.finish(lane)
        self._finish(d.run, d.index)

    def park(
        self,
        lane: Hashable | None,
        d: Delivery,
        delay: float,
        again: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Set `d` aside for `delay` seconds (its lane stays busy), then queue it again,
        or with `again`, run that instead (a task whose unexpected end stops the app)."""
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._parked.discard(handle)
            if again is not None:
                task = loop.create_task(again())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(self._ended)
                return
            self.lanes.requeue(lane, d)
            self._wake.set()

        handle = self.owner.call_later(delay, due)
        self._parked.add(handle)

    def decode(self, d: Delivery) -> Event | None:
        """Validate `d` into its Event (None: not for this handler); raises DecodeError."""
        return decode(d, self._single, self._types)

    def context(self, d: Delivery, attempt: int | None = None) -> Context:
        owner = self.owner
        publisher = owner.context_publisher()
        if self.spec.exactly_once:  # follow-ups go out with the offset commit (exactly_once.py)
            d.outputs = []
            publisher = publisher.staging(d.outputs)
        return context(d, self.spec.topic, owner.group, publisher, attempt)

    async def call(self, payload: Any, ctx: Context | None) -> None:
        """Run the handler on `payload` (an event or a batch's list) with the spec's timeout."""
        await call_handler(self.spec.handler, self.spec.timeout, self._executor, payload, ctx)

    # -- workers -----------------------------------------------------------------------

    async def _worker(self) -> None:
        """Run ready deliveries one at a time; the common case is inlined here.

        The common case: JSON of the handler's one Event class, an async handler without
        Context or timeout, no earlier attempt. Anything else (and any failure to decode,
        which `_deliver` reports) takes `_deliver`.
        """
        ready, busy, wake = self.lanes.ready, self.lanes.busy, self._wake
        finish, fast, stats, schema = self._finish, self._fast, self.stats, self._schema
        func = self.spec.handler.func
        signals, perf = self.signals, time.perf_counter
        obs, tracer = signals.listeners, self.tracer
        while True:
            if self._stopping:
                return
            if not ready:
                wake.clear()
                await wake.wait()
                continue
            lane, d = ready.popleft()
            part = d.run.part
            if not part.live:  # revoked: the next owner gets it
                self.lanes.finish(lane)
                continue
            self.running += 1
            part.running += 1
            try:
                event = None
                if (
                    fast is not None
                    and d.event is None
                    and d.etype is not None
                    and d.schema == schema  # another version: upcast or refuse in _deliver
                ):
                    value = d.record.value
                    if value is not None and d.ctype in (None, b"application/json"):
                        try:
                            event = fast(value)
                        except Exception:
                            event = None  # _deliver validates again and says why
                if event is None:
                    await self._deliver(lane, d)
                    continue
                d.event = event
                observe = obs.active
                t0 = perf() if observe else 0.0
                try:
                    if tracer is None:
                        await func(event)
                    else:
                        with self.span(d):
                            await func(event)
                except Exception as exc:
                    if observe:
                        signals.handled(d, perf() - t0, "error")
                    await self.failed(lane, d, exc)
                    continue
                if observe:
                    signals.handled(d, perf() - t0, "ack")
                # settle(Outcome.ACK), inlined: the path every event of a fast consumer takes
                stats.handled += 1
                if lane is not None:  # Lanes.finish, inlined
                    waiting = busy.get(lane)
                    if waiting:
                        ready.append((lane, waiting.popleft()))
                    elif waiting is not None:
                        del busy[lane]
                finish(d.run, d.index)
            finally:
                self.running -= 1
                part.running -= 1

    async def _deliver(self, lane: Hashable | None, d: Delivery) -> None:
        if d.event is None:
            try:
                d.event = self.decode(d)
            except DecodeError as exc:
                await self.settle(lane, d, self.strategy.gives_up_with, exc, exc.reason)
                return
            if d.event is None:
                await self.settle(lane, d, Outcome.SKIP)
                return
        signals = self.signals
        observe = signals.active
        t0 = time.perf_counter() if observe else 0.0
        try:
            ctx = self.context(d) if self.spec.handler.takes_context else None
            if self.tracer is None:
                await self.call(d.event, ctx)
            else:
                with self.span(d):
                    await self.call(d.event, ctx)
        except Exception as exc:
            if observe:
                signals.handled(d, time.perf_counter() - t0, "error")
            await self.failed(lane, d, exc)
            return
        if observe:
            signals.handled(d, time.perf_counter() - t0, "ack")
        await self.settle(lane, d, Outcome.ACK)

    def span(self, d: Delivery) -> Any:
        """The CONSUMER span of one handler call on `d` (only with a tracer)."""
        rec = d.record
        eid = rec.header(H_ID)
        name = eid.decode("utf-8", "replace") if eid else None
        return tracing.consumer_span(self.tracer, rec, self.owner.group, name)

    async def failed(self, lane: Hashable | None, d: Delivery, exc: Exception) -> None:
        """The handler raised `exc` on `d`: the strategy judges it, then settle."""
        self.stats.failed_attempts += 1
        await self.settle(lane, d, self.strategy.judge(exc, d.attempt), exc, "handler_error")

    async def settle(
        self,
        lane: Hashable | None,
        d: Delivery,
        outcome: Outcome,
        exc: BaseException | None = None,
        reason: str = "handler_error",
    ) -> None:
        """Act on the `outcome` of `d` (`exc` and `reason` say why it failed, if it did)."""
        if outcome is Outcome.ACK:
            self.stats.handled += 1
            if d.outputs:  # exactly_once: held for the commit, before `done` makes it due
                self.owner.stage(d.run, d.index, d.outputs)
            self.done(lane, d)
            return
        if outcome is Outcome.SKIP:
            self.stats.skipped += 1
            if self.signals.active:
                self.signals.skipped(d.record)
            self.done(lane, d)
            return
        assert exc is not None, f"{outcome} needs the error"
        if self.signals.active:
            self.signals.failed(d, reason, exc, outcome)
        strategy = self.strategy
        if outcome is Outcome.RETRY:
            delay = strategy.policy.delay_before(d.attempt + 1)
            self.stats.retried += 1
            strategy.log_retry(self, d, exc, delay)
            await strategy.retrying.retry(self, lane, d, delay)
            return
        await strategy.final.end(self, lane, d, exc, reason)

    # -- batches -----------------------------------------------------------------------

    async def _batch_worker(self) -> None:
        from tidings.runtime.batching import run_batches

        await run_batches(self)
