"""The catalogue's emit points for one consumer: each event handling builds is built here.

Callers check `Signals.active` (one attribute read) before calling, so a consumer nobody
listens to builds no catalogue event at all.
"""

from __future__ import annotations

from collections.abc import Callable

from tidings.instrumentation.catalogue import (
    BatchHandled,
    DeadLetterWritten,
    DelayReleased,
    EventFailed,
    EventHandled,
    EventReceived,
    EventSkipped,
    RetryScheduled,
)
from tidings.instrumentation.dispatch import Listeners
from tidings.records import Record
from tidings.runtime.delivery import Delivery
from tidings.runtime.outcome import Outcome

H_DUE = "tidings-deliver-at"  # tidings.publisher.H_DUE (the runtime does not import it)


class Signals:
    """Emits one consumer's catalogue events (group `group`, listeners `listeners`)."""

    __slots__ = ("group", "listeners", "receiving")

    def __init__(self, group: str, listeners: Listeners) -> None:
        self.group = group
        self.listeners = listeners
        self.receiving = False
        """Whether anyone listens to EventReceived or DelayReleased (checked per run)."""

    @property
    def active(self) -> bool:
        return self.listeners.active

    def refresh(self) -> bool:
        """Update and return `receiving` (listeners may be added before a run starts)."""
        obs = self.listeners
        self.receiving = obs.active and (obs.wants(EventReceived) or obs.wants(DelayReleased))
        return self.receiving

    def received(self, rec: Record, etype: bytes | None, now: Callable[[], float]) -> None:
        group, emit = self.group, self.listeners.emit
        name = etype.decode() if etype else None
        emit(EventReceived(group, rec.topic, rec.partition, rec.offset, name))
        due = rec.header(H_DUE)
        if due is not None:
            try:
                at = float(due)
            except ValueError:
                return
            emit(DelayReleased(group, rec.topic, rec.partition, rec.offset, at, now() - at))

    def skipped(self, rec: Record) -> None:
        self.listeners.emit(EventSkipped(self.group, rec.topic, rec.partition, rec.offset))

    def handled(self, d: Delivery, duration: float, outcome: str) -> None:
        rec = d.record
        etype = d.etype.decode() if d.etype else (d.event.event_type if d.event else None)
        self.listeners.emit(
            EventHandled(
                self.group, rec.topic, rec.partition, rec.offset, etype, d.attempt, duration,
                outcome,
            )
        )  # fmt: skip

    def failed(self, d: Delivery, reason: str, error: BaseException, then: Outcome) -> None:
        rec = d.record
        self.listeners.emit(
            EventFailed(
                self.group, rec.topic, rec.partition, rec.offset, d.attempt, reason, error,
                then.value,
            )
        )  # fmt: skip

    def retry_scheduled(self, d: Delivery, attempt: int, delay: float, *, in_place: bool) -> None:
        rec = d.record
        self.listeners.emit(
            RetryScheduled(
                self.group, rec.topic, rec.partition, rec.offset, attempt, delay, in_place
            )
        )

    def dead_letter_written(self, d: Delivery, reason: str) -> None:
        rec = d.record
        self.listeners.emit(
            DeadLetterWritten(self.group, rec.topic, rec.partition, rec.offset, reason, d.attempt)
        )

    def batch_handled(self, topic: str, size: int, duration: float, outcome: str) -> None:
        self.listeners.emit(BatchHandled(self.group, topic, size, duration, outcome))
