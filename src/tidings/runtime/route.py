"""Dispatch for one consumer: decode, run the handler in key order, act on the Outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic_core import SchemaValidator

from tidings.context import Context
from tidings.events import Event
from tidings.exceptions import DecodeError
from tidings.instrumentation import tracing
from tidings.instrumentation.catalogue import (
    DeadLetterWritten,
    DelayReleased,
    EventFailed,
    EventHandled,
    EventReceived,
    EventSkipped,
    RetryScheduled,
)
from tidings.instrumentation.dispatch import Listeners
from tidings.records import OutgoingRecord, Record
from tidings.runtime.commit_tracker import CommitTracker, Run
from tidings.runtime.dead_letters import H_REPLAY_GROUP, H_RETRY_ATTEMPT, must_drop_value
from tidings.runtime.delivery import MAX_TIME, MIN_TIME, Delivery, context, decode
from tidings.runtime.handlers import call_handler
from tidings.runtime.lanes import Lanes
from tidings.runtime.outcome import Outcome
from tidings.runtime.spec import ConsumerSpec
from tidings.runtime.stats import ConsumerStats
from tidings.wire import H_CONTENT_TYPE, H_DATASCHEMA, H_ID, H_TYPE, schema_uri

H_DUE = "tidings-deliver-at"  # tidings.publisher.H_DUE (the runtime does not import it)

log = logging.getLogger("tidings.consumer")


class RouteOwner(Protocol):
    """What a route needs from its group worker."""

    group: str
    tracker: CommitTracker

    def stop_partition(self, record: Record, reason: str) -> None: ...

    async def write_dead_letter(
        self,
        record: Record,
        reason: str,
        error: BaseException,
        attempts: int,
        drop_value: BaseException | None = None,
        *,
        run: Run | None = None,
    ) -> None: ...

    def fail(self, error: BaseException, where: str) -> None: ...

    async def write_retry(
        self, record: Record, attempt: int, delay: float, *, run: Run | None = None
    ) -> None: ...

    def stage(self, run: Run, index: int, outputs: list[OutgoingRecord]) -> None:
        """Hold a handled event's follow-ups for its offset commit (exactly_once)."""

    def context_publisher(self) -> Any: ...

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...

    async def sleep(self, delay: float) -> None: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


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
        self._types_b = frozenset(t.encode() for t in self._types or ())
        self._group_b = owner.group.encode()
        self._finish = owner.tracker.finish_at
        self.obs: Listeners = getattr(owner, "listeners", None) or Listeners()
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
        if self.tracer is not None:
            self._fast = None  # every event through _deliver, inside its span

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
        """Take a fetched run of one partition (on the event loop thread).

        One pass over the run: read the type headers, skip what is not for this consumer,
        queue the rest in lanes, one per partition or per key (Lanes.submit, inlined).
        """
        records, first, size = run.records, run.start, run.size
        self.stats.received += size
        types_b = self._types_b if self._types is not None else None
        group_b = self._group_b
        topic = run.part.tp.topic
        retried = topic != self.spec.topic  # from the retry topic: carry the attempt on
        keyed = self.spec.batch is None
        by_partition: Hashable | None = run.part.tp if self._by_partition else None
        ready, busy = self.lanes.ready, self.lanes.busy
        lo, hi = MIN_TIME, MAX_TIME
        skipped: list[int] = []
        obs = self.obs
        observe = obs.active and (obs.wants(EventReceived) or obs.wants(DelayReleased))
        for i in range(size):
            rec = records[first + i]
            etype: bytes | None = None
            ctype: bytes | None = None
            schema: bytes | None = None
            skip = False
            for name, value in rec.headers:
                if name == H_TYPE:
                    etype = value
                elif name == H_CONTENT_TYPE:
                    ctype = value
                elif name == H_DATASCHEMA:
                    schema = value
                elif name == H_REPLAY_GROUP and value != group_b:
                    skip = True
                    break
            if skip or (types_b is not None and etype is not None and etype not in types_b):
                skipped.append(i)
                continue
            try:
                if not lo <= rec.timestamp < hi:
                    etype = None  # not on the fast path: decode() refuses it
            except TypeError:
                etype = None
            d = Delivery(rec, run, i, etype, ctype, schema=schema)
            if observe:
                self._received(rec, etype)
            if retried:
                d.attempt = int(rec.header(H_RETRY_ATTEMPT) or b"1")
            lane: Hashable | None = by_partition
            if lane is None:
                key = rec.key
                if key is None or not keyed:
                    ready.append((None, d))
                    continue
                lane = (topic, key) if retried else key
            waiting = busy.get(lane)  # Lanes.submit, inlined
            if waiting is None:
                busy[lane] = deque()
                ready.append((lane, d))
            else:
                waiting.append(d)
        if skipped:
            self.stats.skipped += len(skipped)
            for i in skipped:
                if obs.active:
                    self.skipped(records[first + i])
                self._finish(run, i)
        if by_partition is not None and len(busy) > len(self._tasks):
            self._spawn()  # a worker per partition with work: none waits behind another
        if ready and not self._wake.is_set():
            self._wake.set()

    # -- workers -----------------------------------------------------------------------

    async def _next(self) -> tuple[Hashable | None, Delivery] | None:
        while True:
            if self._stopping:
                return None
            ready = self.lanes.ready
            if ready:
                return ready.popleft()
            self._wake.clear()
            await self._wake.wait()

    async def _worker(self) -> None:
        """Run ready deliveries one at a time; the common case is inlined here.

        The common case: JSON of the handler's one Event class, an async handler without
        Context or timeout, no earlier attempt. Anything else (and any failure to decode,
        which `_deliver` reports) takes `_deliver`.
        """
        ready, busy, wake = self.lanes.ready, self.lanes.busy, self._wake
        finish, fast, stats, schema = self._finish, self._fast, self.stats, self._schema
        func = self.spec.handler.func
        obs, perf = self.obs, time.perf_counter
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
                    await func(event)
                except Exception as exc:
                    if observe:
                        self.handled(d, perf() - t0, "error")
                    await self._failed(lane, d, exc)
                    continue
                if observe:
                    self.handled(d, perf() - t0, "ack")
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

    async def _failed(self, lane: Hashable | None, d: Delivery, exc: Exception) -> None:
        self.stats.failed_attempts += 1
        if self.spec.retry.should_retry(exc, d.attempt):
            await self._settle(lane, d, Outcome.RETRY, exc, "handler_error")
        else:
            await self._settle(lane, d, Outcome.DEAD_LETTER, exc, "handler_error")

    async def _deliver(self, lane: Hashable | None, d: Delivery) -> None:
        if d.event is None:
            try:
                d.event = self.decode(d)
            except DecodeError as exc:
                await self._settle(lane, d, Outcome.DEAD_LETTER, exc, exc.reason)
                return
            if d.event is None:
                self.stats.skipped += 1
                if self.obs.active:
                    self.skipped(d.record)
                self.lanes.finish(lane)
                self._finish(d.run, d.index)
                return
        observe = self.obs.active
        t0 = time.perf_counter() if observe else 0.0
        try:
            ctx = self.context(d) if self.spec.handler.takes_context else None
            if self.tracer is None:
                await self._call(d.event, ctx)
            else:
                rec = d.record
                eid = rec.header(H_ID)
                with tracing.consumer_span(
                    self.tracer,
                    rec,
                    self.owner.group,
                    eid.decode("utf-8", "replace") if eid else None,
                ):
                    await self._call(d.event, ctx)
        except Exception as exc:
            if observe:
                self.handled(d, time.perf_counter() - t0, "error")
            await self._failed(lane, d, exc)
            return
        if observe:
            self.handled(d, time.perf_counter() - t0, "ack")
        self.stats.handled += 1
        if d.outputs:
            self.owner.stage(d.run, d.index, d.outputs)  # before the finish makes it committable
        self.lanes.finish(lane)
        self._finish(d.run, d.index)

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

    async def _call(self, payload: Any, ctx: Context | None) -> None:
        await call_handler(self.spec.handler, self.spec.timeout, self._executor, payload, ctx)

    async def _settle(
        self,
        lane: Hashable | None,
        d: Delivery,
        outcome: Outcome,
        exc: BaseException,
        reason: str,
    ) -> None:
        rec = d.record
        if self.obs.active and not d.dlq_failures:
            then = (
                outcome
                if outcome is not Outcome.DEAD_LETTER or self.spec.dead_letter
                else (Outcome.STOP)
            )
            self.obs.emit(
                EventFailed(
                    self.owner.group, rec.topic, rec.partition, rec.offset, d.attempt, reason,
                    exc, then.value,
                )
            )  # fmt: skip
        if outcome is Outcome.RETRY:
            delay = self.spec.retry.delay_before(d.attempt + 1)
            self.stats.retried += 1
            log.warning(
                "%s failed on %s[%d]@%d (attempt %d of %d): %r; retrying in %.2fs",
                self.spec.handler.name,
                rec.topic,
                rec.partition,
                rec.offset,
                d.attempt,
                self.spec.retry.attempts,
                exc,
                delay,
                extra=_where(self.owner.group, rec),
            )
            if not self.spec.retry.keep_order:
                try:
                    await self.owner.write_retry(rec, d.attempt + 1, delay, run=d.run)
                except Exception as write_error:
                    log.error("Could not write to the retry topic (%r); retrying in place.",
                              write_error)  # fmt: skip
                else:
                    self.retry_scheduled(d, d.attempt + 1, delay, in_place=False)
                    self.lanes.finish(lane)
                    self._finish(d.run, d.index)
                    return
            d.attempt += 1
            self.retry_scheduled(d, d.attempt, delay, in_place=True)
            self._park(lane, d, delay)
            return
        if not self.spec.dead_letter:
            self.stats.stopped_partitions += 1
            self.owner.stop_partition(rec, f"{reason}: {exc}")
            return  # the lane stays busy: nothing after this event of its lane runs
        try:
            await self.owner.write_dead_letter(rec, reason, exc, d.attempt, d.dlq_error, run=d.run)
        except Exception as write_error:
            d.dlq_failures += 1
            delay = 5.0
            if d.dlq_error is None and must_drop_value(write_error, d.dlq_failures):
                d.dlq_error, delay = write_error, 0.0
            log.error(
                "Could not write %s[%d]@%d to the dead-letter topic (%s); %s. The offset is "
                "not committed meanwhile.",
                rec.topic,
                rec.partition,
                rec.offset,
                write_error,
                "retrying in 5 s"
                if delay
                else "writing it again without its value (the original stays in its topic)",
            )
            self._park(lane, d, delay, retry_dlq=(outcome, exc, reason))
            return
        self.stats.dead_lettered += 1
        if self.obs.active:
            self.obs.emit(
                DeadLetterWritten(
                    self.owner.group, rec.topic, rec.partition, rec.offset, reason, d.attempt
                )
            )
        self.lanes.finish(lane)
        self._finish(d.run, d.index)
        self._wake.set()  # from a parked retry of the write, no worker may be awake

    # -- the catalogue's emit points (callers check self.obs.active first) ----------------

    def _received(self, rec: Record, etype: bytes | None) -> None:
        group = self.owner.group
        self.obs.emit(
            EventReceived(
                group, rec.topic, rec.partition, rec.offset, etype.decode() if etype else None
            )
        )
        due = rec.header(H_DUE)
        if due is not None:
            try:
                at = float(due)
            except ValueError:
                return
            self.obs.emit(
                DelayReleased(
                    group, rec.topic, rec.partition, rec.offset, at, self.owner.time() - at
                )
            )

    def skipped(self, rec: Record) -> None:
        self.obs.emit(EventSkipped(self.owner.group, rec.topic, rec.partition, rec.offset))

    def handled(self, d: Delivery, duration: float, outcome: str) -> None:
        rec = d.record
        etype = d.etype.decode() if d.etype else (d.event.event_type if d.event else None)
        self.obs.emit(
            EventHandled(
                self.owner.group, rec.topic, rec.partition, rec.offset, etype, d.attempt,
                duration, outcome,
            )
        )  # fmt: skip

    def retry_scheduled(self, d: Delivery, attempt: int, delay: float, *, in_place: bool) -> None:
        if self.obs.active:
            rec = d.record
            self.obs.emit(
                RetryScheduled(
                    self.owner.group, rec.topic, rec.partition, rec.offset, attempt, delay,
                    in_place,
                )
            )  # fmt: skip

    def _park(
        self,
        lane: Hashable | None,
        d: Delivery,
        delay: float,
        retry_dlq: tuple[Outcome, BaseException, str] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._parked.discard(handle)
            if retry_dlq is not None:
                task = loop.create_task(self._settle(lane, d, *retry_dlq))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(self._ended)
                return
            self.lanes.requeue(lane, d)
            self._wake.set()

        handle = self.owner.call_later(delay, due)
        self._parked.add(handle)

    # -- batches -----------------------------------------------------------------------

    async def _batch_worker(self) -> None:
        from tidings.runtime.batching import run_batches

        await run_batches(self)


def _where(group: str, rec: Record) -> dict[str, object]:
    """The fields structured logs (``--log-format json``) carry for one record."""
    return {"group": group, "topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
