"""One group's membership in this process: the poll thread and commits (flow control: flow.py).

The poll thread owns the backend's ConsumerHandle: it fetches, commits, pauses and resumes,
and runs rebalance callbacks. Records go to the event loop in whole fetched batches, where
each topic's Route runs the handler. Offsets are committed only over contiguous finished
events (CommitTracker), asynchronously while flowing and synchronously on revocation and
shutdown. Because the poll thread keeps calling fetch while handlers run (their partitions
paused when too much is in flight), a long handler never costs the group membership.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tidings.backends.base import Backend, ConsumerHandle
from tidings.clock import Clock
from tidings.exceptions import ConsumerFailed, TidingsError
from tidings.instrumentation.catalogue import (
    OffsetsCommitted,
    PartitionsAssigned,
    PartitionsRevoked,
    WorkerStarted,
    WorkerStopping,
)
from tidings.instrumentation.dispatch import Listeners
from tidings.instrumentation.lag import GroupReport
from tidings.records import OutgoingRecord, Record, TopicPartition
from tidings.runtime.commit_tracker import CommitTracker, Run
from tidings.runtime.dead_letters import dead_letter, dlq_topic, retry_record, retry_topic
from tidings.runtime.exactly_once import Transactions
from tidings.runtime.flow import FlowControl
from tidings.runtime.owner import Cancellable
from tidings.runtime.owner import where as _where
from tidings.runtime.route import Route
from tidings.runtime.spec import ConsumerSpec
from tidings.runtime.stats import ConsumerStats

log = logging.getLogger("tidings.consumer")


class GroupWorker:
    """Runs every consumer of one group that this process hosts."""

    fetch_max = 500
    poll_timeout = 0.05
    idle_poll_timeout = 0.25
    """Fetch wait while nothing is in flight: an idle worker wakes 4 times a second, not 20
    (a fetch returns as soon as records arrive; a stop waits up to this long for it)."""
    commit_interval = 0.1
    revoke_grace = 5.0
    recommit_interval = 2.0
    ready_without_partitions = 30.0
    """A member with no partitions (more members than partitions) counts as joined after
    its consumer has been open this long."""

    def __init__(
        self,
        backend: Backend,
        group: str,
        specs: Sequence[ConsumerSpec],
        *,
        clock: Clock,
        publisher: Any,
        member_id: str | None = None,
        max_in_flight: int = 10_000,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        listeners: Listeners | None = None,
    ) -> None:
        self.listeners = listeners or Listeners()
        self._joined = False
        self._last_turn: float | None = None
        self._opened: float | None = None
        self._lag: tuple[float, dict[tuple[str, int], int]] | None = None
        self.backend = backend
        self.group = group
        self.specs = list(specs)
        self.clock = clock
        self._publisher = publisher
        self.member_id = member_id
        self.start_from = self.specs[0].start
        self.tracker = CommitTracker()
        self.flow = FlowControl(
            group,
            self.tracker,
            self.listeners,
            max_in_flight=max_in_flight,
            max_in_flight_bytes=max_in_flight_bytes,
        )
        self.routes: dict[str, Route] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_fetching = threading.Event()
        self._closed = threading.Event()
        self._abort = False
        self._stopped: dict[TopicPartition, str] = {}
        self._stop_lock = threading.Lock()
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self.error: BaseException | None = None
        self._handle: ConsumerHandle | None = None
        self.transactions = Transactions(self) if any(s.exactly_once for s in self.specs) else None
        """exactly_once groups: outputs staged for, and committed with, their offsets."""
        self.lag_report: GroupReport | None = None
        """The group's lag and status from the latest sample (runtime/status.py)."""

    # -- lifecycle (event loop thread) ---------------------------------------------------

    async def start(self) -> None:
        """Create routes, declare dead-letter topics and start the poll thread."""
        self._loop = asyncio.get_running_loop()
        for spec in self.specs:
            route = Route(spec, self)
            self.routes[spec.topic] = route
            if not spec.retry.keep_order:
                self.routes[retry_topic(spec.topic, self.group)] = route
            route.start()
        if self.listeners.active:
            self.listeners.emit(WorkerStarted(self.group, tuple(self.routes), self))
        self._thread = threading.Thread(
            target=self._poll_thread, name=f"tidings-poll-{self.group}", daemon=True
        )
        self._thread.start()

    async def stop(self, grace: float) -> None:
        """Stop fetching, let running handlers finish within `grace`, commit, leave."""
        if self.listeners.active:
            self.listeners.emit(WorkerStopping(self.group))
        for route in self.routes.values():
            route.begin_shutdown()
        deadline = self.clock.monotonic() + grace
        while any(r.running for r in self.routes.values()):
            if self._abort or self.clock.monotonic() >= deadline:
                if not self._abort:
                    log.warning(
                        "group %s: handlers still running after the %.1f s grace period; "
                        "leaving without committing them (they will be redelivered)",
                        self.group,
                        grace,
                    )
                break
            await asyncio.sleep(0.02)
        self._stop_fetching.set()
        await asyncio.to_thread(self._closed.wait)
        for route in self.routes.values():
            await route.close()

    def abort(self) -> None:
        """Leave at once: no waiting for handlers (done work is still committed)."""
        self._abort = True

    def assigned_now(self) -> list[TopicPartition]:
        """Return the partitions this worker owns now (poll thread)."""
        return sorted(self._assigned)

    def statistics(self) -> dict[str, Any]:
        total = ConsumerStats()
        for route in self.routes.values():
            total.add(route.stats)
        snap: dict[str, Any] = total.snapshot()
        snap["in_flight"] = self.tracker.in_flight()
        snap["in_flight_bytes"] = self.tracker.in_flight_bytes()
        snap["assigned"] = sorted(self._assigned)
        return snap

    @property
    def assigned(self) -> list[TopicPartition]:
        """The partitions assigned to this process now."""
        return sorted(self._assigned)

    def stopped(self) -> dict[TopicPartition, str]:
        """Return the partitions stopped on purpose (a failure without dead letters), why."""
        with self._stop_lock:
            return dict(self._stopped)

    def hold(self, paused: bool) -> None:
        """Pause (or resume) fetching every partition; running handlers carry on."""
        self.flow.hold(paused)

    @property
    def held(self) -> bool:
        """Whether fetching is paused on request (`hold`)."""
        return self.flow.held

    def backpressure(self) -> tuple[bool, list[TopicPartition]]:
        """Return whether fetching is paused group-wide, and the partitions paused now."""
        return self.flow.global_pause, sorted(self.flow.paused)

    # -- WorkerView (health, read from any thread) ------------------------------------------

    @property
    def joined(self) -> bool:
        """Whether partitions were assigned at least once (the group is joined), or the
        consumer has been open `ready_without_partitions` seconds without any."""
        opened = self._opened
        return self._joined or (
            opened is not None and time.monotonic() - opened >= self.ready_without_partitions
        )

    def seconds_since_poll(self) -> float:
        """Seconds since the poll loop last turned; 0 before it started."""
        last = self._last_turn
        return 0.0 if last is None else max(0.0, time.monotonic() - last)

    def lag_messages(self, max_age: float) -> dict[tuple[str, int], int]:
        """Events after this group's committed offsets per partition (cached `max_age` s)."""
        now = time.monotonic()
        cached = self._lag
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        lag: dict[tuple[str, int], int] = {}
        try:
            for info in self.backend.groups([self.group]):
                if info.group == self.group:
                    lag = {(p.topic, p.partition): p.lag for p in info.partitions}
        except Exception as exc:
            log.debug("group %s: lag unavailable: %r", self.group, exc)
        self._lag = (now, lag)
        return lag

    # -- RouteOwner (event loop thread) --------------------------------------------------

    def stop_partition(self, record: Record, reason: str) -> None:
        tp = TopicPartition(record.topic, record.partition)
        log.error(
            "group %s stops %s[%d] at offset %d: %s. Nothing after it in this partition is "
            "committed until this is fixed (enable dead letters to move such events aside).",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            reason,
            extra=_where(self.group, record),
        )
        with self._stop_lock:
            self._stopped[tp] = reason

    def fail(self, error: BaseException, where: str) -> None:
        """Stop the app: `where` (a route's task) ended on `error`, which nothing expected."""
        log.error(
            "group %s: %s stopped on an unexpected %s; stopping the app",
            self.group,
            where,
            type(error).__name__,
            exc_info=error,
        )
        if self.error is None:
            try:
                text = str(error)
            except Exception:  # a broken __str__ must not keep the app from stopping
                text = "(its message could not be rendered)"
            failed = ConsumerFailed(
                f"group {self.group}: {where} stopped on an unexpected "
                f"{type(error).__name__}: {text}. The app stops so that nothing is skipped "
                "silently; events not committed are redelivered when it runs again. A "
                "handler raising a BaseException that is not an Exception (or a bug in "
                "tidings) does this; the log above has the traceback."
            )
            failed.__cause__ = error
            self.error = failed

    async def write_dead_letter(
        self,
        record: Record,
        reason: str,
        error: BaseException,
        attempts: int,
        drop_value: BaseException | None = None,
        *,
        run: Run | None = None,
    ) -> None:
        out = dead_letter(
            record,
            group=self.group,
            reason=reason,
            error=error,
            attempts=attempts,
            now=self.clock.time(),
            drop_value=drop_value,
        )
        if self.transactions is not None and run is not None:
            self.transactions.staged.add(run.part, record.offset, [out])  # with the commit
        else:
            await asyncio.to_thread(self.backend.produce, [out])
        log.error(
            "group %s: %s[%d]@%d dead-lettered to %s after %d attempt(s): %s: %s",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            dlq_topic(record.topic, self.group),
            attempts,
            reason,
            error,
            extra=_where(self.group, record),
        )

    async def write_retry(
        self, record: Record, attempt: int, delay: float, *, run: Run | None = None
    ) -> None:
        out = retry_record(record, self.group, attempt, self.clock.time() + delay)
        if self.transactions is not None and run is not None:
            self.transactions.staged.add(run.part, record.offset, [out])  # with the commit
        else:
            await asyncio.to_thread(self.backend.produce, [out])

    def stage(self, run: Run, index: int, outputs: list[OutgoingRecord]) -> None:
        """Hold a handled event's follow-ups until its offset is committed with them."""
        if self.transactions is not None:
            self.transactions.staged.add(run.part, run.records[run.start + index].offset, outputs)

    def context_publisher(self) -> Any:
        return self._publisher

    def time(self) -> float:
        return self.clock.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run `callback` on the event loop after `delay` seconds of the app's clock."""
        schedule = getattr(self.clock, "call_later", None)
        if schedule is None:
            assert self._loop is not None
            return self._loop.call_later(delay, callback)
        loop = self._loop
        assert loop is not None
        handle: Cancellable = schedule(delay, lambda: loop.call_soon_threadsafe(callback))
        return handle

    async def sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        self.call_later(delay, wake)
        await done

    # -- RebalanceListener (poll thread, inside fetch) -----------------------------------

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._assigned.update(partitions)
        if self.transactions is not None:
            self.transactions.assigned(partitions)
        self._joined = True
        if self.listeners.active:
            self.listeners.emit(PartitionsAssigned(self.group, _pairs(partitions)))
        log.info("group %s: assigned %s", self.group, _fmt(partitions))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        # Start nothing new on these partitions, give running handlers a moment to finish
        # (fewer redeliveries for the next owner), then commit what is done and let go.
        self.tracker.stop_starting(partitions)
        self.wait_running(partitions)
        handle = self._handle
        if self.transactions is not None:
            self.transactions.revoke(handle, partitions)
            offsets = {}
        else:
            offsets = self.tracker.revoke(partitions)
            self._positions.update(offsets)
            offsets = {tp: self._positions.pop(tp) for tp in partitions if tp in self._positions}
        if offsets and handle is not None:
            try:
                self._send_commit(handle, offsets, sync=True)
            except Exception as exc:
                log.warning("group %s: commit on revocation failed: %r", self.group, exc)
        self._assigned.difference_update(partitions)
        self.flow.paused.difference_update(partitions)
        with self._stop_lock:
            for tp in partitions:
                self._stopped.pop(tp, None)
        if self.listeners.active:
            self.listeners.emit(PartitionsRevoked(self.group, _pairs(partitions)))
        log.info("group %s: revoked %s", self.group, _fmt(partitions))

    # -- the poll thread -------------------------------------------------------------------

    def _poll_thread(self) -> None:
        try:
            self._handle = self.backend.open_consumer(
                self.group,
                list(self.routes),
                start=self.start_from,
                listener=self,
                member_id=self.member_id,
            )
            self._opened = time.monotonic()
            self._poll_loop(self._handle)
        except BaseException as exc:
            self.error = exc
            expected = isinstance(exc, TidingsError)
            log.error(
                "group %s: consumer failed: %s", self.group, exc, exc_info=None if expected else exc
            )
        finally:
            self._closed.set()

    def _poll_loop(self, handle: ConsumerHandle) -> None:
        assert self._loop is not None
        loop = self._loop
        next_commit = self.clock.monotonic() + self.commit_interval
        next_full = self.clock.monotonic() + self.recommit_interval
        while not self._stop_fetching.is_set():
            self._last_turn = time.monotonic()
            with self._stop_lock:
                stopped = list(self._stopped)
            self.flow.apply(handle, self._assigned, stopped)
            if self.clock.monotonic() >= next_commit:
                full = self.clock.monotonic() >= next_full
                if full:
                    next_full = self.clock.monotonic() + self.recommit_interval
                self._commit(handle, sync=False, everything=full)
                next_commit = self.clock.monotonic() + self.commit_interval
            timeout = self.poll_timeout
            if not self.tracker.in_flight():
                self._commit(handle, sync=False)  # what just finished, before a long wait
                timeout = self.idle_poll_timeout
            records = handle.fetch(self.fetch_max, timeout)
            if records:
                runs = self.tracker.track_runs(records)
                if self.transactions is not None:
                    self.transactions.fetched(runs)
                loop.call_soon_threadsafe(self._dispatch, runs)
        try:
            self._commit(handle, sync=True, everything=True)
        finally:
            handle.close()

    def wait_running(self, partitions: Sequence[TopicPartition]) -> None:
        """Give handlers running on `partitions` up to `revoke_grace` seconds to finish."""
        deadline = self.clock.monotonic() + self.revoke_grace
        while self.tracker.running(partitions) and not self._abort:
            if self.clock.monotonic() >= deadline:
                break
            time.sleep(0.005)

    def _commit(self, handle: ConsumerHandle, *, sync: bool, everything: bool = False) -> None:
        """Commit positions that advanced; with `everything`, every known position again.

        An asynchronous commit can fail without telling us (Kafka refuses commits during a
        rebalance), and a partition that is idle afterwards would keep a stale commit and
        redeliver what was handled. Re-sending every position now and then closes that gap.
        """
        if self.transactions is not None:
            self.transactions.commit(handle, past=self._past_markers if everything else None)
            return
        offsets = self.tracker.take_committable()
        self._positions.update(offsets)
        if everything:
            self._positions.update(self._past_markers(handle, self._positions))
            offsets = {tp: o for tp, o in self._positions.items() if tp in self._assigned}
        if offsets:
            try:
                self._send_commit(handle, offsets, sync=sync)
            except Exception as exc:
                log.warning("group %s: commit failed (%r); will retry", self.group, exc)

    def _past_markers(
        self, handle: ConsumerHandle, committed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Read positions past the commit of partitions with nothing in flight.

        Every record below a partition's read position was returned, tracked and (nothing
        being in flight) handled, so only Kafka transaction markers can lie between its
        commit and its position. Committing the position keeps a group that read a topic
        written in transactions from showing lag 1 per partition forever.
        """
        out: dict[TopicPartition, int] = {}
        for tp in self._assigned:
            at = committed.get(tp)
            if at is None or self.tracker.in_flight(tp):
                continue
            position = handle.position(tp)
            if position is not None and position > at:
                out[tp] = position
        return out

    def _send_commit(
        self,
        handle: ConsumerHandle,
        offsets: dict[TopicPartition, int],
        *,
        sync: bool,
        outputs: Sequence[OutgoingRecord] | None = None,
    ) -> None:
        """Commit `offsets`; with `outputs` (exactly_once), in one transaction with them."""
        if outputs is None:
            handle.commit(offsets, sync=sync)
        else:
            handle.commit_transaction(outputs, offsets)
        if self.listeners.active:
            done = tuple((tp.topic, tp.partition, o) for tp, o in offsets.items())
            self.listeners.emit(OffsetsCommitted(self.group, done, sync))

    def _dispatch(self, runs: list[Run]) -> None:
        """Hand each fetched run to its topic's route (on the event loop thread)."""
        try:
            self._submit(runs)
        except Exception as exc:  # would vanish into the loop's handler, leaving a stall
            self.fail(exc, "dispatching fetched records")

    def _submit(self, runs: list[Run]) -> None:
        routes = self.routes
        for run in runs:
            route = routes.get(run.part.tp.topic)
            if route is not None:
                route.submit_run(run)
                continue
            for i in range(run.size):
                self.tracker.finish_at(run, i)


def _fmt(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def _pairs(partitions: Sequence[TopicPartition]) -> tuple[tuple[str, int], ...]:
    return tuple((tp.topic, tp.partition) for tp in partitions)
