"""App: declare topics and consumers, publish events, run consumers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from tidings.backends.base import Backend
from tidings.backends.registry import open_backend, resolve_url
from tidings.clock import SYSTEM_CLOCK, Clock
from tidings.events import Event
from tidings.exceptions import ConfigurationError
from tidings.instrumentation.catalogue import RuntimeEvent
from tidings.instrumentation.dispatch import Listeners
from tidings.publisher import (
    DEFAULT_MAX_EVENT_BYTES,
    Item,
    Published,
    Publisher,
    TopicRef,
    topic_name,
)
from tidings.records import Start, TopicSpec
from tidings.replication import MIN_INSYNC, topic_config
from tidings.runtime.dead_letters import dlq_topic, retry_topic
from tidings.runtime.group_worker import GroupWorker
from tidings.runtime.handlers import inspect_handler
from tidings.runtime.policies import Batch, Retry
from tidings.runtime.runner import Runner
from tidings.runtime.spec import ConsumerSpec
from tidings.runtime.status import StatusReporter
from tidings.topics import declared_spec

if TYPE_CHECKING:
    from tidings.outbox import Inbox, Outbox
    from tidings.outbox.tables import AnyEngine

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=RuntimeEvent)
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
Topic = TopicSpec


def _durability(parent: TopicSpec) -> dict[str, Any]:
    """The replication settings a group's retry and dead-letter topics take from `parent`.

    Only the replication and ``min.insync.replicas``: other properties (compaction, say)
    would be wrong for a topic of failed events.
    """
    config = {k: v for k, v in parent.config if k == MIN_INSYNC}
    return {"replication": parent.replication, "config": config or None}


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"{kind} name {name!r} is invalid: use 1-200 letters, digits, '.', '_' or '-'."
        )


class App:
    """A tidings application: its topics, consumers and a connection to one broker.

    The broker is ``broker=`` if given, else ``$TIDINGS_BROKER``, else the embedded store in
    ``./.tidings``. It is opened on first use, so declaring an App at import time does no
    I/O. `grace` bounds a graceful stop (seconds); `max_in_flight` and
    `max_in_flight_bytes` cap the fetched but unfinished events (and their key + value
    bytes) per group in this process: fetching pauses above either, which bounds memory and
    the redeliveries after a crash. Each finished event releases the average size of the
    fetch it came in (up to 500 records of one partition). While consumers run, the app
    publishes a status snapshot every `status_interval` seconds to the internal topic
    ``tidings.status`` for `tidings dashboard` (None: none). Other keyword options go to the
    backend (e.g. ``config={...}`` librdkafka properties for Kafka, ``synchronous="FULL"``
    for the embedded store).
    """

    def __init__(
        self,
        name: str,
        broker: str | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        grace: float = 30.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_in_flight: int = 10_000,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        status_interval: float | None = 5.0,
        **options: Any,
    ) -> None:
        _check_name("App", name)
        if grace < 0:
            raise ConfigurationError(f"grace must be >= 0 seconds (got {grace}).")
        if max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1 (got {max_in_flight}).")
        self.name = name
        self.broker = broker
        if max_in_flight_bytes < 1:
            raise ConfigurationError(
                f"max_in_flight_bytes must be >= 1 (got {max_in_flight_bytes})."
            )
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        if status_interval is not None and status_interval <= 0:
            raise ConfigurationError(
                f"status_interval must be > 0 seconds, or None for no status reports "
                f"(got {status_interval})."
            )
        self.status_interval = status_interval
        self.clock = clock
        self.grace = grace
        self.options = options
        self.topics: dict[str, TopicSpec] = {}
        self.consumers: list[ConsumerSpec] = []
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        self._declared: set[str] = set()
        self.outboxes: list[Outbox] = []
        self.inboxes: list[Inbox] = []
        self.listeners = Listeners()
        self._publisher = Publisher(
            name,
            self._ready_backend,
            clock,
            max_event_bytes=max_event_bytes,
            listeners=self.listeners,
        )

    def __repr__(self) -> str:
        return f"App({self.name!r}, broker={self.broker_url!r})"

    @property
    def broker_url(self) -> str:
        return resolve_url(self.broker)

    # -- declarations --------------------------------------------------------------------

    def topic(
        self,
        name: str,
        *,
        partitions: int | None = None,
        retention: timedelta | None = None,
        replication: int | None = None,
        config: Mapping[str, str | int] | None = None,
    ) -> Topic:
        """Declare a topic; it is created on the broker (if missing) when the app first uses it.

        `partitions` (created with 1 if not given) and `retention` (a `timedelta`; the
        broker's default if not given) are what the topic must have: if it exists with
        other values, the app's first publish or run raises ConfigurationError before any
        event is written (on Kafka, a different retention is only logged as a warning).
        Leave a setting out to accept the existing topic's value.

        On Kafka, `replication` is the number of copies of each partition (None: the
        ``App(replication=...)`` default, else the broker's) and `config` holds topic
        properties such as ``{"min.insync.replicas": "2"}``, applied when tidings creates the
        topic. The embedded and memory brokers keep one copy and ignore both.

        Raises:
            ConfigurationError: a bad name, partitions < 1, a retention that is not a
                positive timedelta, a bad replication or config, or a second declaration
                with other settings.
        """
        _check_name("Topic", name)
        declared = declared_spec(name, partitions, retention)
        spec = TopicSpec(
            name,
            declared.partitions,
            declared.retention,
            replication,
            topic_config(name, replication, config),
        )
        existing = self.topics.get(name)
        if existing is not None and existing != spec:
            raise ConfigurationError(
                f"Topic {name!r} is declared twice with different settings: {existing} and {spec}."
            )
        self.topics[name] = spec
        return spec

    def consumer(
        self,
        topic: TopicRef,
        *,
        group: str,
        retry: Retry | None = None,
        dead_letter: bool = True,
        concurrency: int | None = None,
        batch: Batch | None = None,
        timeout: float | timedelta | None = None,
        start: Start = "earliest",
        exactly_once: bool = False,
    ) -> Callable[[F], F]:
        """Register the decorated function as a consumer of `topic` in `group`.

        The handler's first parameter annotation chooses what it receives (one Event
        subclass, a union, or Event for all; with `batch`, a list of them); events of other
        types are skipped and committed. An optional second parameter receives the Context.
        By default each partition runs one event at a time, independently of the others;
        `concurrency=N` runs up to N at once in this process instead, never two of one key.
        See the README for retry, dead letters, concurrency, batches and timeouts.
        With `exactly_once=True`, each handled event's `ctx.publish` follow-ups, dead letter
        or retry record are written in one transaction with its offset commit (README,
        "Exactly once"); not with `batch=`, and every consumer of the group must agree.
        """
        name = topic_name(topic)
        _check_name("Topic", name)
        _check_name("Group", group)
        if isinstance(topic, str) and name not in self.topics:
            self.topic(name)
        elif not isinstance(topic, str) and name not in self.topics:
            self.topics[name] = topic
        if concurrency is not None and concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1 (got {concurrency}).")
        if batch is not None and concurrency not in (None, 1):
            raise ConfigurationError(
                "A batch consumer runs one batch at a time; drop concurrency= or batch=."
            )
        if start not in ("earliest", "latest"):
            raise ConfigurationError(f"start must be 'earliest' or 'latest' (got {start!r}).")
        if exactly_once and batch is not None:
            raise ConfigurationError(
                f"Group {group!r}: exactly_once=True does not support batch= consumers (a "
                "batch's follow-ups cannot yet be tied to its events' offsets). Drop batch= "
                "and handle one event at a time (concurrency=N for throughput), or drop "
                "exactly_once=True."
            )
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if seconds is not None and seconds <= 0:
            raise ConfigurationError(f"timeout must be positive (got {timeout!r}).")

        def register(func: F) -> F:
            info = inspect_handler(func, batch=batch is not None)
            for other in self.consumers:
                if other.group == group and other.topic == name:
                    raise ConfigurationError(
                        f"Group {group!r} already has a consumer on {name!r} "
                        f"({other.handler.name}). One group handles a topic once: use one "
                        "handler with a union annotation, or another group."
                    )
                if other.group == group and other.exactly_once != exactly_once:
                    raise ConfigurationError(
                        f"Group {group!r} has consumers with exactly_once={other.exactly_once} "
                        f"({other.handler.name}) and exactly_once={exactly_once}; a group "
                        "commits its offsets one way. Set the same exactly_once on every "
                        "consumer of the group, or put them in separate groups."
                    )
                if other.group == group and other.start != start:
                    raise ConfigurationError(
                        f"Group {group!r} is declared with start={other.start!r} and "
                        f"start={start!r}; a group has one starting position."
                    )
            if retry is not None and not retry.keep_order:
                spec = self.topics[name]
                self.topic(
                    retry_topic(name, group), partitions=spec.partitions, **_durability(spec)
                )
            if dead_letter and dlq_topic(name, group) not in self.topics:
                # Declared like any topic: backends create only declared topics.
                self.topic(dlq_topic(name, group), **_durability(self.topics[name]))
            self.consumers.append(
                ConsumerSpec(
                    handler=info,
                    topic=name,
                    group=group,
                    retry=retry or Retry(),
                    dead_letter=dead_letter,
                    concurrency=concurrency,
                    batch=batch,
                    timeout=seconds,
                    start=start,
                    exactly_once=exactly_once,
                )
            )
            return func

        return register

    def on(self, kind: type[E], listener: Callable[[E], object]) -> Callable[[E], object]:
        """Call `listener(event)` for every runtime event of `kind` (see the README's event
        catalogue: tidings.EventHandled, ...; tidings.RuntimeEvent for all). Register before
        `run`. Listeners run on the emitting thread and must be quick; one that raises is
        logged (at most once a minute) and consumption goes on.
        """
        return self.listeners.on(kind, listener)

    def groups(self) -> list[str]:
        """Return the names of the groups this app declares, in declaration order."""
        return list(dict.fromkeys(c.group for c in self.consumers))

    # -- the broker ----------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The broker connection (opened on first use; declared topics are created)."""
        return self._ready_backend()

    def _ready_backend(self) -> Backend:
        backend = self._backend
        if backend is not None and len(self._declared) == len(self.topics):
            return backend
        with self._backend_lock:
            if self._backend is None:
                self._backend = open_backend(self.broker, self.options)
            missing = [spec for name, spec in self.topics.items() if name not in self._declared]
            if missing:
                self._backend.ensure_topics(missing)
                self._declared.update(spec.name for spec in missing)
            return self._backend

    def close(self) -> None:
        """Release the broker connection (flushing anything pending)."""
        with self._backend_lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
                self._declared.clear()

    @contextlib.contextmanager
    def use_backend(self, backend: Backend, *, clock: Clock | None = None) -> Iterator[None]:
        """Run this app on `backend` (and `clock`) inside the block, then restore its own.

        For test harnesses such as `tidings.testing.Harness`: declared topics are created on
        `backend` on first use; the app's own connection is left open and used again after.
        Enter it before running consumers or publishing from other threads.
        """
        with self._backend_lock:
            saved = (self._backend, set(self._declared), self.clock, self._publisher.clock)
            self._backend = backend
            self._declared.clear()
            if clock is not None:
                self.clock = clock
                self._publisher.clock = clock
        try:
            yield
        finally:
            with self._backend_lock:
                self._backend, self._declared, self.clock, self._publisher.clock = saved

    # -- publishing ----------------------------------------------------------------------

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        """Publish one event and return once the broker stored it durably (thread-safe).

        `key` (str, UTF-8 encoded, or bytes) chooses the partition: events with one key
        keep their order. `headers` are str to str; names tidings writes itself
        (``ce_*``, ``content-type``, ``tidings-*``, in any case) are refused. With
        `delay` (a non-negative timedelta) or `at` (an aware datetime; a past one means
        now), the event is delivered to consumers no earlier than then.

        Raises:
            ConfigurationError: a reserved header, a key of another type, a negative delay.
            TopicNotFound: `topic` is a name this app did not declare and it does not exist.
            EncodeError: the event cannot be encoded as JSON (nothing was sent).
            EventTooLarge: the encoded event exceeds `max_event_bytes` (nothing was sent).
            PublishError: the broker did not store it (DeliveryUncertain: it may have).
            BrokerUnavailable: the broker could not be reached within the time bound.
        """
        return self._publisher.publish(topic, event, key=key, headers=headers, delay=delay, at=at)

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        """Awaitable twin of `publish`; never blocks the event loop.

        On Kafka it awaits the delivery report without holding a thread; on the embedded
        broker the commit runs in the loop's default executor.
        """
        return await self._publisher.publish_async(
            topic, event, key=key, headers=headers, delay=delay, at=at
        )

    def publish_many(
        self, topic: TopicRef, events: Iterable[Item], *, delay: timedelta | None = None
    ) -> list[Published]:
        """Publish many events in one batch: items are events or (key, event) pairs.

        Much faster than one `publish` per event; returns when all are durable. If any
        fails, PublishError says how many and why (the others may be stored). On Kafka,
        events are sent 1,000 at a time while the rest are encoded: an event refused while
        encoding (EventTooLarge) leaves the events before it stored, and the exception's
        note says how many. The embedded broker stores the whole call or nothing.
        """
        return self._publisher.publish_many(topic, events, delay=delay)

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    # -- the two edges: outbox and inbox (tidings.outbox, extra tidings[outbox]) ----------

    def outbox(self, engine: AnyEngine, **options: Any) -> Outbox:
        """Publish in SQLAlchemy transactions on `engine`; `run` and `tidings relay` relay them."""
        from tidings.outbox import Outbox

        self.outboxes.append(Outbox(self._publisher, self._ready_backend, engine, **options))
        return self.outboxes[-1]

    def inbox(self, engine: AnyEngine, **options: Any) -> Inbox:
        """Skip events a group already handled, in the handler's transaction on `engine`."""
        from tidings.outbox import Inbox

        self.inboxes.append(Inbox(engine, **options))
        return self.inboxes[-1]

    def _edges(self) -> contextlib.AbstractContextManager[None]:
        if not (self.outboxes or self.inboxes):
            return contextlib.nullcontext()
        from tidings.outbox import edges_running

        return edges_running(self.outboxes, self.inboxes)

    # -- running consumers ---------------------------------------------------------------

    def _workers(
        self, groups: Iterable[str] | None, instance: str | None = None
    ) -> list[GroupWorker]:
        chosen = list(groups) if groups else self.groups()
        unknown = [g for g in chosen if g not in self.groups()]
        if unknown:
            raise ConfigurationError(
                f"App {self.name!r} has no consumer group {unknown[0]!r}; "
                f"its groups are: {', '.join(self.groups()) or '(none)'}."
            )
        if not chosen:
            raise ConfigurationError(
                f"App {self.name!r} declares no consumers; decorate a handler with "
                "@app.consumer(topic, group=...)."
            )
        backend = self._ready_backend()
        return [
            GroupWorker(
                backend,
                group,
                [c for c in self.consumers if c.group == group],
                clock=self.clock,
                publisher=self._publisher,
                member_id=None if instance is None else f"{self.name}.{group}.{instance}",
                max_in_flight=self.max_in_flight,
                max_in_flight_bytes=self.max_in_flight_bytes,
                listeners=self.listeners,
            )
            for group in chosen
        ]

    def runner(self, groups: Iterable[str] | None = None, *, instance: str | None = None) -> Runner:
        """Build a Runner for the chosen groups (all by default).

        `instance` names this process stably across restarts (`tidings run --workers`
        passes ``<host>.w<index>``): each group's member id is then
        ``<app>.<group>.<instance>``, which on Kafka is the static ``group.instance.id``,
        so a restarted worker gets its partitions back without a rebalance. None: a new
        random member id per run.
        """
        workers = self._workers(groups, instance)
        status = None
        if self.status_interval is not None:
            status = StatusReporter(self._ready_backend(), self.name, interval=self.status_interval)
        return Runner(workers, grace=self.grace, status=status)

    async def serve(self, groups: Iterable[str] | None = None) -> None:
        """Run the consumers inside an existing event loop until cancelled."""
        runner = self.runner(groups)
        task = asyncio.create_task(runner.serve())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            runner.request_stop()
            await task
            raise

    def run(self, groups: Iterable[str] | None = None, *, instance: str | None = None) -> None:
        """Run the consumers until SIGTERM/SIGINT (blocks); same as `tidings run`.

        A second Ctrl-C aborts: the process exits with status 130 as soon as the group is
        left, without waiting for running handlers (their events are redelivered later).
        `instance`: see `runner`.
        """
        runner = self.runner(groups, instance=instance)
        runner.tune_heap = True  # this process serves until it exits

        async def main() -> None:
            runner.install_signal_handlers()
            await runner.serve()

        try:
            with self._edges():
                asyncio.run(main())
        finally:
            self.close()
        if runner.aborted:
            # Handler threads still running would hold the interpreter open until they
            # return; an abort must not wait for them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)

    @contextlib.contextmanager
    def running(self, groups: Iterable[str] | None = None) -> Iterator[Runner]:
        """Run the consumers in a background thread for the duration of a `with` block.

        Leaving the block stops them gracefully (commit, leave the group). Useful in tests
        and in programs that host consumers next to other work.
        """
        runner = self.runner(groups)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            asyncio.set_event_loop(loop)

            async def main() -> None:
                task = asyncio.ensure_future(runner.serve())
                started.set()
                await task

            try:
                with self._edges():
                    loop.run_until_complete(main())
            except BaseException as exc:
                errors.append(exc)
            finally:
                started.set()
                loop.close()

        thread = threading.Thread(target=target, name=f"tidings-{self.name}", daemon=True)
        thread.start()
        started.wait()
        try:
            yield runner
        finally:
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(runner.request_stop)
            thread.join()
            if errors:
                raise errors[0]
