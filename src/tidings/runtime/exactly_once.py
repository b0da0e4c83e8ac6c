"""Outputs waiting for their offset commit, for consumers with `exactly_once=True`.

A handled event's follow-ups (`ctx.publish`), its dead letter or its retry record are not
produced when the handler returns; they are staged here under the event's partition and
offset. When the group worker commits offsets, it takes every staged output below the new
committed offsets and hands outputs and offsets to the backend's `commit_transaction`: on
Kafka one transaction, on the embedded broker one SQLite transaction. Outputs of a handler
attempt that raised are never staged; outputs from a revoked or rewound assignment are
dropped, and their events are handled again by whoever reads them next.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from tidings.backends.base import ConsumerHandle
from tidings.exceptions import TransactionAborted
from tidings.records import OutgoingRecord, TopicPartition
from tidings.runtime.commit_tracker import CommitTracker, Partition, Run

log = logging.getLogger("tidings.consumer")

_Entry = tuple[int, int, Partition, Sequence[OutgoingRecord]]
"""(input offset, staging order, the assignment it came from, outputs)."""


class StagedOutputs:
    """Outputs per input partition, in input offset order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_tp: dict[TopicPartition, list[_Entry]] = {}
        self._order = itertools.count()

    def add(self, part: Partition, offset: int, records: Sequence[OutgoingRecord]) -> None:
        """Stage `records`, the outputs of the event at `offset` of `part`'s partition."""
        if part.gone or not records:
            return  # revoked or rewound meanwhile: the event is handled again
        with self._lock:
            self._by_tp.setdefault(part.tp, []).append((offset, next(self._order), part, records))

    def take(self, offsets: Mapping[TopicPartition, int]) -> list[OutgoingRecord]:
        """Remove and return the outputs of events below `offsets` (the next to read)."""
        out: list[OutgoingRecord] = []
        with self._lock:
            for tp, upto in offsets.items():
                entries = self._by_tp.get(tp)
                if not entries:
                    continue
                ready = sorted((e for e in entries if e[0] < upto), key=lambda e: (e[0], e[1]))
                rest = [e for e in entries if e[0] >= upto]
                if rest:
                    self._by_tp[tp] = rest
                else:
                    del self._by_tp[tp]
                for _, _, part, records in ready:
                    if not part.gone:
                        out.extend(records)
        return out

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        """Forget the outputs of `tps` (revoked, or rewound to their committed offsets)."""
        with self._lock:
            for tp in tps:
                self._by_tp.pop(tp, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(r) for entries in self._by_tp.values() for *_, r in entries)


PastMarkers = Callable[[ConsumerHandle, dict[TopicPartition, int]], dict[TopicPartition, int]]


class TransactionOwner(Protocol):
    """What `Transactions` needs from its group worker."""

    group: str
    tracker: CommitTracker

    def assigned_now(self) -> list[TopicPartition]:
        """Return the partitions the worker owns now."""

    def wait_running(self, partitions: Sequence[TopicPartition]) -> None:
        """Give handlers running on `partitions` a moment to finish (bounded)."""

    def fail(self, error: BaseException, where: str) -> None:
        """Stop the app: `where` ended on `error`, which retrying cannot fix."""

    def _send_commit(
        self,
        handle: ConsumerHandle,
        offsets: dict[TopicPartition, int],
        *,
        sync: bool,
        outputs: Sequence[OutgoingRecord] | None = None,
    ) -> None:
        """Commit (and tell listeners); with `outputs`, `commit_transaction`."""


class Transactions:
    """A group worker's exactly-once commits (used from its poll thread).

    Every commit is `ConsumerHandle.commit_transaction(outputs, offsets)`. When the backend
    aborts one (fenced, revoked, broker failure), nothing of it is visible, and the worker
    rewinds: work in flight is dropped and every partition is read again from its last
    committed offset, so the events whose outputs were lost are handled again.
    """

    def __init__(self, owner: TransactionOwner) -> None:
        self.owner = owner
        self.staged = StagedOutputs()
        self._base: dict[TopicPartition, int] = {}
        """Where each partition is read again from after an abort: its last commit."""

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._base.pop(tp, None)  # a new assignment starts at its committed offset

    def fetched(self, runs: Sequence[Run]) -> None:
        for run in runs:
            self._base.setdefault(run.part.tp, run.records[run.start].offset)

    def commit(
        self,
        handle: ConsumerHandle,
        only: Sequence[TopicPartition] | None = None,
        *,
        rewind: bool = True,
        past: PastMarkers | None = None,
    ) -> bool:
        """Commit finished offsets (of `only`, or all) with their staged outputs; with
        `past`, also the read positions it finds past transaction markers.

        Returns False when the transaction was aborted (and, with `rewind`, rewound).
        """
        owner = self.owner
        offsets = owner.tracker.take_committable(only)
        if past is not None:
            offsets.update(past(handle, {**self._base, **offsets}))
        if not offsets:
            return True
        records = self.staged.take(offsets)
        try:
            owner._send_commit(handle, offsets, sync=True, outputs=records)
        except TransactionAborted as exc:
            log.warning(
                "group %s: exactly-once commit of %d output(s) aborted: %s",
                owner.group,
                len(records),
                exc,
            )
            if rewind:
                self.rewind(handle)
            return False
        except Exception as exc:
            # The outputs themselves are refused (a topic that does not exist, an event too
            # large): the same commit would fail forever. Handle nothing twice, skip nothing:
            # read again from the last commit, and stop the app saying why.
            if rewind:
                self.rewind(handle)
            owner.fail(exc, "the exactly-once commit of its outputs and offsets")
            return False
        self._base.update(offsets)
        return True

    def revoke(self, handle: ConsumerHandle | None, partitions: Sequence[TopicPartition]) -> None:
        """Commit what is done on `partitions` (which are going away), then forget them."""
        if handle is not None:
            self.commit(handle, partitions, rewind=False)
        self.owner.tracker.revoke(partitions)
        self.staged.drop(partitions)

    def rewind(self, handle: ConsumerHandle) -> None:
        """Drop the work in flight and read every partition again from its last commit."""
        owner = self.owner
        tps = owner.assigned_now()
        owner.tracker.stop_starting(tps)
        owner.wait_running(tps)
        owner.tracker.revoke(tps)
        self.staged.drop(tps)
        for tp in tps:
            base = self._base.get(tp)
            if base is not None:
                handle.seek(tp, base)
        log.warning(
            "group %s: reading %s again from the last committed offsets",
            owner.group,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps) or "nothing",
        )
