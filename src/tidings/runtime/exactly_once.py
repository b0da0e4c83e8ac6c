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
import threading
from collections.abc import Iterable, Mapping, Sequence

from tidings.records import OutgoingRecord, TopicPartition
from tidings.runtime.commit_tracker import Partition

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
