"""The closed catalogue of runtime events: what a running app tells its listeners.

Every class here is a frozen, slotted dataclass with a dotted `name`; each is emitted from
exactly one place in tidings (listed in `EMITTED_BY`). Listeners run on the thread that
emits: the event loop (handling), a group's poll thread (partitions, commits, pauses) or
the publishing thread (publishes), so they must be quick and thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from tidings.instrumentation.lag import GroupReport


class WorkerView(Protocol):
    """A read-only view of one group's worker in this process (health and gauges)."""

    group: str
    error: BaseException | None
    lag_report: GroupReport | None
    """Lag and status from the latest sample (every status interval); None before one."""

    @property
    def joined(self) -> bool:
        """Whether the group has joined (partitions assigned at least once)."""
        ...

    def seconds_since_poll(self) -> float:
        """Seconds since the poll loop last turned (0 before it starts)."""
        ...

    def statistics(self) -> dict[str, object]: ...

    def lag_messages(self, max_age: float) -> dict[tuple[str, int], int]:
        """Events after the group's committed offsets, per (topic, partition), read from
        the broker at most every `max_age` seconds; {} when the broker cannot tell."""
        ...


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """Base of every catalogue event; `app.on(RuntimeEvent, fn)` receives them all."""

    name: ClassVar[str] = "runtime"


@dataclass(frozen=True, slots=True)
class EventReceived(RuntimeEvent):
    """A fetched record was queued for a consumer."""

    name: ClassVar[str] = "event.received"
    group: str
    topic: str
    partition: int
    offset: int
    event_type: str | None


@dataclass(frozen=True, slots=True)
class EventHandled(RuntimeEvent):
    """A handler call on one event ended: `outcome` is "ack" (returned) or "error" (raised)."""

    name: ClassVar[str] = "event.handled"
    group: str
    topic: str
    partition: int
    offset: int
    event_type: str | None
    attempt: int
    duration: float
    outcome: str


@dataclass(frozen=True, slots=True)
class EventFailed(RuntimeEvent):
    """An event failed (handler error or undecodable); `then` is "retry", "dead_letter" or
    "stop" (dead letters off: its partition stops)."""

    name: ClassVar[str] = "event.failed"
    group: str
    topic: str
    partition: int
    offset: int
    attempt: int
    reason: str
    error: BaseException
    then: str


@dataclass(frozen=True, slots=True)
class RetryScheduled(RuntimeEvent):
    """A failed event will be tried again (attempt `attempt`) after `delay` seconds, in place
    (holding back its partition or key) or through the group's retry topic."""

    name: ClassVar[str] = "retry.scheduled"
    group: str
    topic: str
    partition: int
    offset: int
    attempt: int
    delay: float
    in_place: bool


@dataclass(frozen=True, slots=True)
class DeadLetterWritten(RuntimeEvent):
    """An event was written to the group's dead-letter topic (and its offset may commit)."""

    name: ClassVar[str] = "dead_letter.written"
    group: str
    topic: str
    partition: int
    offset: int
    reason: str
    attempts: int


@dataclass(frozen=True, slots=True)
class EventSkipped(RuntimeEvent):
    """An event not for this consumer (another type, or replayed for another group)."""

    name: ClassVar[str] = "event.skipped"
    group: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class BatchHandled(RuntimeEvent):
    """A batch handler call ended: `outcome` is "ack" or "error"."""

    name: ClassVar[str] = "batch.handled"
    group: str
    topic: str
    size: int
    duration: float
    outcome: str


@dataclass(frozen=True, slots=True)
class PartitionsAssigned(RuntimeEvent):
    name: ClassVar[str] = "partitions.assigned"
    group: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PartitionsRevoked(RuntimeEvent):
    name: ClassVar[str] = "partitions.revoked"
    group: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class OffsetsCommitted(RuntimeEvent):
    """Offsets handed to the broker: ((topic, partition, next offset), ...)."""

    name: ClassVar[str] = "offsets.committed"
    group: str
    offsets: tuple[tuple[str, int, int], ...]
    sync: bool


@dataclass(frozen=True, slots=True)
class DelayScheduled(RuntimeEvent):
    """This process published `count` events to be delivered at `deliver_at` (epoch s)."""

    name: ClassVar[str] = "delay.scheduled"
    topic: str
    count: int
    deliver_at: float


@dataclass(frozen=True, slots=True)
class DelayReleased(RuntimeEvent):
    """A delayed event reached a consumer; `late` is seconds past its due time."""

    name: ClassVar[str] = "delay.released"
    group: str
    topic: str
    partition: int
    offset: int
    deliver_at: float
    late: float


@dataclass(frozen=True, slots=True)
class EventPublished(RuntimeEvent):
    """A publish call stored `count` events (durable) in `duration` seconds."""

    name: ClassVar[str] = "event.published"
    topic: str
    count: int
    duration: float
    delayed: bool


@dataclass(frozen=True, slots=True)
class ConsumerPaused(RuntimeEvent):
    """Backpressure (or a stopped partition): fetching paused on these partitions."""

    name: ClassVar[str] = "consumer.paused"
    group: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ConsumerResumed(RuntimeEvent):
    name: ClassVar[str] = "consumer.resumed"
    group: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class WorkerStarted(RuntimeEvent):
    """A group's worker started in this process; `worker` reads its health and totals."""

    name: ClassVar[str] = "worker.started"
    group: str
    topics: tuple[str, ...]
    worker: WorkerView


@dataclass(frozen=True, slots=True)
class WorkerStopping(RuntimeEvent):
    """A group's worker began its graceful stop (not ready from now on)."""

    name: ClassVar[str] = "worker.stopping"
    group: str


@dataclass(frozen=True, slots=True)
class WorkerRestarted(RuntimeEvent):
    """The `tidings run --workers` supervisor restarts worker process `index`.

    Emitted in the supervisor process (where the app is loaded too). `reason` is "exited"
    (it exited or was killed by someone else), "heartbeat" (its poll loop stopped turning
    and the supervisor killed it), "memory" (drained after passing --max-memory) or
    "reload" (files changed under --reload). `code` is the old process's exit status, or
    `-N` when signal N ended it; `restarts` counts this index's restarts so far, and the
    new process starts after `delay` seconds (the backoff).
    """

    name: ClassVar[str] = "worker.restarted"
    index: int
    pid: int
    code: int
    reason: str
    restarts: int
    delay: float


CATALOGUE: tuple[type[RuntimeEvent], ...] = (
    EventReceived,
    EventHandled,
    EventFailed,
    RetryScheduled,
    DeadLetterWritten,
    EventSkipped,
    BatchHandled,
    PartitionsAssigned,
    PartitionsRevoked,
    OffsetsCommitted,
    DelayScheduled,
    DelayReleased,
    EventPublished,
    ConsumerPaused,
    ConsumerResumed,
    WorkerStarted,
    WorkerStopping,
    WorkerRestarted,
)
"""Every event type, in the order the README lists them."""

EMITTED_BY: dict[type[RuntimeEvent], str] = {
    EventReceived: "tidings.runtime.signals.Signals.received",
    EventHandled: "tidings.runtime.signals.Signals.handled",
    EventFailed: "tidings.runtime.signals.Signals.failed",
    RetryScheduled: "tidings.runtime.signals.Signals.retry_scheduled",
    DeadLetterWritten: "tidings.runtime.signals.Signals.dead_letter_written",
    EventSkipped: "tidings.runtime.signals.Signals.skipped",
    BatchHandled: "tidings.runtime.signals.Signals.batch_handled",
    PartitionsAssigned: "tidings.runtime.group_worker.GroupWorker.on_assigned",
    PartitionsRevoked: "tidings.runtime.group_worker.GroupWorker.on_revoked",
    OffsetsCommitted: "tidings.runtime.group_worker.GroupWorker._send_commit",
    DelayScheduled: "tidings.publisher.Publisher._published",
    DelayReleased: "tidings.runtime.signals.Signals.received",
    EventPublished: "tidings.publisher.Publisher._published",
    ConsumerPaused: "tidings.runtime.flow.FlowControl.apply",
    ConsumerResumed: "tidings.runtime.flow.FlowControl.apply",
    WorkerStarted: "tidings.runtime.group_worker.GroupWorker.start",
    WorkerStopping: "tidings.runtime.group_worker.GroupWorker.stop",
    WorkerRestarted: "tidings.workers.supervisor.Supervisor._schedule_restart",
}
"""Where each event is built and emitted: the one function that does it."""
