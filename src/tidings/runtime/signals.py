"""The catalogue's emit points for one consumer: each event handling builds is built here.

Callers check `Signals.active` (one attribute read) before calling, so a consumer nobody
listens to builds no catalogue event at all.
"""

from __future__ import annotations

from bisect import bisect_left
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
from tidings.instrumentation.dispatch import Listeners, Tally
from tidings.records import Record
from tidings.runtime.delivery import Delivery
from tidings.runtime.outcome import Outcome

H_DUE = "tidings-deliver-at"  # tidings.publisher.H_DUE (the runtime does not import it)


class Signals:
    """Emits one consumer's catalogue events (group `group`, listeners `listeners`)."""

    __slots__ = ("emits_handled", "group", "listeners", "receiving", "tally")

    def __init__(self, group: str, listeners: Listeners) -> None:
        self.group = group
        self.listeners = listeners
        self.receiving = False
        """Whether anyone listens to EventReceived or DelayReleased (checked per run)."""
        self.emits_handled = False
        """Whether anyone listens to EventHandled (checked per run)."""
        self.tally: Tally | None = None
        """Handled events summed for aggregating listeners (`Listeners.keep_tallies`)."""
        self.refresh()

    @property
    def active(self) -> bool:
        return self.listeners.active

    def refresh(self) -> bool:
        """Update and return `receiving` (listeners may be added before a run starts)."""
        obs = self.listeners
        self.receiving = obs.active and (obs.wants(EventReceived) or obs.wants(DelayReleased))
        self.emits_handled = obs.wants(EventHandled)
        if self.tally is None and obs.buckets is not None:
            self.tally = obs.new_tally(self.group)
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
        tally = self.tally
        if tally is not None:  # Tally.add, inlined: this runs per event
            series = tally.series.get((rec.topic, outcome))
            if series is None:
                series = tally.start(rec.topic, outcome)
            series[bisect_left(tally.buckets, duration)] += 1
            series[-1] += duration
        if not self.emits_handled:
            return
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
