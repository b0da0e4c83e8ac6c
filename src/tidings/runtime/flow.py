"""Flow control of one group worker: which partitions fetching pauses, and why.

A partition pauses when too many of its events are in flight (resuming at half), all
pause when the worker's events or bytes in flight pass `App(max_in_flight=...,
max_in_flight_bytes=...)` (resuming at half), or when paused on request (`hold`, from
the dashboard), and a partition stopped on purpose stays paused. Used from the poll thread;
`hold` and the read-only views may be called from any thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from tidings.backends.base import ConsumerHandle
from tidings.instrumentation.catalogue import ConsumerPaused, ConsumerResumed
from tidings.instrumentation.dispatch import Listeners
from tidings.records import TopicPartition
from tidings.runtime.commit_tracker import CommitTracker

log = logging.getLogger("tidings.consumer")


class FlowControl:
    """Pauses and resumes a group worker's partitions (see the module docstring)."""

    def __init__(
        self,
        group: str,
        tracker: CommitTracker,
        listeners: Listeners,
        *,
        max_in_flight: int,
        max_in_flight_bytes: int,
    ) -> None:
        self.group = group
        self.tracker = tracker
        self.listeners = listeners
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self.max_in_flight_per_partition = max(100, max_in_flight // 4)
        self.paused: set[TopicPartition] = set()
        self.global_pause = False
        self.held = False

    def hold(self, paused: bool) -> None:
        """Pause (or resume) fetching every partition; running handlers carry on."""
        if paused != self.held:
            log.warning("group %s: %s on request", self.group, "paused" if paused else "resumed")
        self.held = paused

    def apply(
        self,
        handle: ConsumerHandle,
        assigned: set[TopicPartition],
        stopped: Iterable[TopicPartition],
    ) -> None:
        """Pause partitions with too much in flight (or stopped); resume them when drained."""
        counts = self.tracker.in_flight_by_partition()
        total = sum(counts.values())
        want: set[TopicPartition] = set(stopped)
        cap = self.max_in_flight_per_partition
        for tp in assigned:
            n = counts.get(tp, 0)
            if n >= cap or (tp in self.paused and n > cap // 2):
                want.add(tp)
        limit, nbytes = self.max_in_flight, self.tracker.in_flight_bytes()
        byte_limit = self.max_in_flight_bytes
        over = total >= limit or nbytes >= byte_limit
        still = total > limit // 2 or nbytes > byte_limit // 2
        self.global_pause = over or (self.global_pause and still)
        if self.global_pause or self.held:
            want |= assigned
        pause = sorted(want - self.paused)
        resume = sorted(self.paused - want)
        if pause:
            handle.pause(pause)
            if self.listeners.active:
                self.listeners.emit(ConsumerPaused(self.group, _pairs(pause)))
        if resume:
            handle.resume(resume)
            if self.listeners.active:
                self.listeners.emit(ConsumerResumed(self.group, _pairs(resume)))
        self.paused = want & assigned


def _pairs(partitions: Sequence[TopicPartition]) -> tuple[tuple[str, int], ...]:
    return tuple((tp.topic, tp.partition) for tp in partitions)
