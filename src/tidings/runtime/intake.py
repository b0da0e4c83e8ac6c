"""Intake: turn a fetched run of records into deliveries queued in key order.

One pass over the run reads the type headers, settles what is not for this consumer as
SKIP (before queuing: it holds no lane), and queues the rest in lanes, one per partition
(the default) or per key (`concurrency=N`). Lanes.submit is inlined: this runs per record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence

from tidings.records import Record
from tidings.runtime.commit_tracker import Run
from tidings.runtime.dead_letters import H_REPLAY_GROUP, H_RETRY_ATTEMPT
from tidings.runtime.delivery import MAX_TIME, MIN_TIME, Delivery
from tidings.runtime.lanes import Lanes
from tidings.runtime.signals import Signals
from tidings.runtime.stats import ConsumerStats
from tidings.wire import H_CONTENT_TYPE, H_DATASCHEMA, H_TYPE


class Intake:
    """Queues one consumer's fetched runs (see the module docstring)."""

    def __init__(
        self,
        *,
        topic: str,
        group: str,
        types: frozenset[str] | None,
        by_partition: bool,
        keyed: bool,
        lanes: Lanes[Delivery],
        stats: ConsumerStats,
        signals: Signals,
        finish: Callable[[Run, int], None],
        now: Callable[[], float],
    ) -> None:
        self.topic = topic
        self._types_b = frozenset(t.encode() for t in types) if types is not None else None
        self._group_b = group.encode()
        self.by_partition = by_partition
        self.keyed = keyed
        self.lanes = lanes
        self.stats = stats
        self.signals = signals
        self._finish = finish
        self._now = now

    def submit(self, run: Run) -> None:
        """Queue the records of `run` (on the event loop thread)."""
        records, first, size = run.records, run.start, run.size
        self.stats.received += size
        types_b, group_b = self._types_b, self._group_b
        topic = run.part.tp.topic
        retried = topic != self.topic  # from the retry topic: carry the attempt on
        keyed = self.keyed
        by_partition: Hashable | None = run.part.tp if self.by_partition else None
        ready, busy = self.lanes.ready, self.lanes.busy
        lo, hi = MIN_TIME, MAX_TIME
        skipped: list[int] = []
        signals = self.signals
        observe = signals.refresh()
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
                signals.received(rec, etype, self._now)
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
            self._skip(run, records, first, skipped)

    def _skip(self, run: Run, records: Sequence[Record], first: int, skipped: list[int]) -> None:
        """Outcome.SKIP for records settled before queuing (they hold no lane)."""
        self.stats.skipped += len(skipped)
        signals = self.signals
        for i in skipped:
            if signals.active:
                signals.skipped(records[first + i])
            self._finish(run, i)
