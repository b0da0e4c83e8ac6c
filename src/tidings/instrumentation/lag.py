"""Consumer lag in seconds, and a group's status judged over a window of observations.

Lag in events is the broker's end offset minus the committed offset. Lag in seconds is the
age of the oldest event not handled yet: now minus the timestamp of the record at the
committed offset (0 when caught up). The status follows Burrow's idea of judging a window
of observations rather than one number:

- ``stopped``: a partition was stopped on purpose (a failure without dead letters, or a
  pause), as the group's workers report it;
- ``stalled``: lag above zero and no commit across the whole window;
- ``lagging``: commits move, but the lag grew across the window;
- ``ok``: everything else.

`LagMonitor` keeps the window per partition (the dashboard feeds it every few seconds);
`head_timestamps` reads the record timestamps lag in seconds needs; `GroupEvaluator` does
both for the groups of a worker process (metrics, status snapshots, `groups describe`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from tidings.backends.base import Backend, GroupInfo
from tidings.records import TopicPartition


class Status(StrEnum):
    """A partition's or group's health, worst last."""

    OK = "ok"
    LAGGING = "lagging"
    STALLED = "stalled"
    STOPPED = "stopped"


_RANK = {s: i for i, s in enumerate(Status)}


def worst(statuses: Iterable[Status]) -> Status:
    """Return the worst of `statuses` (ok for none)."""
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at a partition: when, where the group had committed, where the log ended."""

    at: float
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


MIN_OBSERVATIONS = 5
"""Observations a window needs before it can call a partition lagging or stalled."""


def evaluate(window: Iterable[Observation], *, stopped: bool = False) -> Status:
    """Judge a partition from its observations, oldest first (see the module docstring).

    A window shorter than `MIN_OBSERVATIONS` is ok unless stopped: one jump in lag between
    two looks is traffic, not a trend.
    """
    if stopped:
        return Status.STOPPED
    obs = list(window)
    if len(obs) < MIN_OBSERVATIONS or obs[-1].lag == 0:
        return Status.OK
    if all(o.lag > 0 for o in obs) and obs[0].committed == obs[-1].committed:
        return Status.STALLED
    lags = [o.lag for o in obs]
    if all(b >= a for a, b in itertools.pairwise(lags)) and lags[-1] > lags[0]:
        return Status.LAGGING
    return Status.OK


class LagMonitor:
    """Keeps the last `window` seconds of observations per (group, partition), or with
    `keep`, the last `keep` observations (a window of samples, as Burrow's of commits).

    Thread-safety: call from one thread (the dashboard's sampler).
    """

    def __init__(self, window: float = 60.0, *, keep: int | None = None) -> None:
        self.window = window
        self.keep = keep
        self._obs: dict[tuple[str, TopicPartition], deque[Observation]] = {}

    def observe(self, group: str, tp: TopicPartition, committed: int, end: int, at: float) -> None:
        """Record one observation (older ones than the window are dropped)."""
        q = self._obs.get((group, tp))
        if q is None:
            q = self._obs[(group, tp)] = deque(maxlen=self.keep)
        q.append(Observation(at, committed, end))
        while len(q) > 2 and at - q[1].at >= self.window:
            q.popleft()

    def status(self, group: str, tp: TopicPartition, *, stopped: bool = False) -> Status:
        return evaluate(self._obs.get((group, tp), ()), stopped=stopped)

    def forget(self, keep: Iterable[tuple[str, TopicPartition]]) -> None:
        """Drop the windows of partitions not in `keep` (groups or topics that went away)."""
        wanted = set(keep)
        for k in [k for k in self._obs if k not in wanted]:
            del self._obs[k]


def lag_seconds(committed: int, end: int, head_timestamp: float | None, now: float) -> float:
    """Return the age of the oldest unhandled event (0 when caught up or unknown)."""
    if committed >= end or head_timestamp is None:
        return 0.0
    return max(0.0, now - head_timestamp)


class HeadClock:
    """Timestamps of the records at given offsets, read from the broker and cached.

    Keys are (label, partition) pairs, e.g. (group, partition): several groups may want
    different offsets of one partition. An offset read before is not read again, so a
    steady sample reads the broker only for partitions whose commit moved.
    """

    def __init__(self, backend: Backend, *, timeout: float = 2.0, budget: int = 200) -> None:
        self.backend = backend
        self.timeout = timeout
        self.budget = budget
        """Offsets read per call at most (the rest on later calls): bounds one sample."""
        self._cache: dict[tuple[TopicPartition, int], float] = {}

    def timestamps(
        self, wanted: Mapping[tuple[str, TopicPartition], int]
    ) -> dict[tuple[str, TopicPartition], float]:
        """Return the timestamp of the record at each wanted offset (missing if unreadable)."""
        needed = {(tp, offset) for (_, tp), offset in wanted.items()}
        todo = [k for k in needed if k not in self._cache][: self.budget]
        while todo:
            rounds: dict[TopicPartition, int] = {}
            rest: list[tuple[TopicPartition, int]] = []
            for tp, offset in todo:
                if tp in rounds:
                    rest.append((tp, offset))
                else:
                    rounds[tp] = offset
            found = head_timestamps(self.backend, rounds, timeout=self.timeout)
            for tp, ts in found.items():
                self._cache[(tp, rounds[tp])] = ts
            todo = rest
        for k in [k for k in self._cache if k not in needed]:
            del self._cache[k]
        return {
            key: self._cache[(key[1], offset)]
            for key, offset in wanted.items()
            if (key[1], offset) in self._cache
        }


def head_timestamps(
    backend: Backend, wanted: Mapping[TopicPartition, int], *, timeout: float = 2.0
) -> dict[TopicPartition, float]:
    """Read the timestamp of the record at `wanted[tp]` in each partition (without a group).

    The first record at or after the offset counts (offsets may have gaps on Kafka).
    Partitions not read within `timeout` seconds are left out.
    """
    if not wanted:
        return {}
    topics = sorted({tp.topic for tp in wanted})
    handle = backend.open_consumer(None, topics, start="earliest", listener=None)
    out: dict[TopicPartition, float] = {}
    try:
        others = [tp for tp in handle.assignment() if tp not in wanted]
        if others:
            handle.pause(others)
        for tp, offset in wanted.items():
            handle.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while len(out) < len(wanted) and time.monotonic() < deadline:
            done: list[TopicPartition] = []
            for record in handle.fetch(500, 0.2):
                tp = record.tp
                if tp in wanted and tp not in out and record.offset >= wanted[tp]:
                    out[tp] = record.timestamp
                    done.append(tp)
            if done:
                handle.pause(done)
    finally:
        handle.close()
    return out


@dataclass(frozen=True, slots=True)
class PartitionReport:
    """One partition of a group as a sample saw it."""

    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_seconds: float | None
    """None while lag > 0 but the record at the committed offset could not be read."""
    status: Status


@dataclass(frozen=True, slots=True)
class GroupReport:
    """A group's lag and status, evaluated over the window of samples up to `at`."""

    group: str
    status: Status
    partitions: tuple[PartitionReport, ...]
    at: float

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        """The oldest unhandled event's age over all partitions (None: unknown)."""
        known = [p.lag_seconds for p in self.partitions if p.lag]
        if any(s is None for s in known):
            return None
        return max((s for s in known if s is not None), default=0.0)


class GroupEvaluator:
    """Samples groups and judges each over its last `samples` samples, in a worker process.

    `sample` is called every few seconds from one thread (the status reporter). Lag in
    seconds reads the record at each committed offset: from `known` (the oldest record
    a worker has in flight, when that is the one) or else from the broker (`HeadClock`).
    """

    def __init__(
        self, backend: Backend, *, samples: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.monitor = LagMonitor(float("inf"), keep=max(samples, MIN_OBSERVATIONS))
        self.heads = HeadClock(backend)
        self.clock = clock

    def sample(
        self,
        infos: Iterable[GroupInfo],
        *,
        stopped: Mapping[str, set[TopicPartition]],
        known: Mapping[TopicPartition, tuple[int, float]],
    ) -> dict[str, GroupReport]:
        """Observe each group in `infos` once; return its report.

        `stopped[group]` are partitions stopped on purpose; `known[tp]` the (offset,
        timestamp) of a record this process holds (read from the broker otherwise).
        """
        infos = list(infos)
        wanted: dict[tuple[str, TopicPartition], int] = {}
        stamps: dict[tuple[str, TopicPartition], float] = {}
        for info in infos:
            for p in info.partitions:
                tp = TopicPartition(p.topic, p.partition)
                committed = p.committed or 0
                if committed >= p.end:
                    continue
                held = known.get(tp)
                if held is not None and held[0] == committed:
                    stamps[(info.group, tp)] = held[1]
                else:
                    wanted[(info.group, tp)] = committed
        stamps.update(self.heads.timestamps(wanted))
        # Read the time only now: a record published while the heads were read is younger
        # than a time taken before, and would show lag with an age of 0.
        now = self.clock()
        reports: dict[str, GroupReport] = {}
        seen: list[tuple[str, TopicPartition]] = []
        for info in infos:
            parts: list[PartitionReport] = []
            for p in info.partitions:
                tp = TopicPartition(p.topic, p.partition)
                committed = p.committed or 0
                self.monitor.observe(info.group, tp, committed, p.end, now)
                seen.append((info.group, tp))
                stamp = stamps.get((info.group, tp))
                lag = max(0, p.end - committed)
                age = None if lag and stamp is None else lag_seconds(committed, p.end, stamp, now)
                status = self.monitor.status(
                    info.group, tp, stopped=tp in stopped.get(info.group, ())
                )
                parts.append(
                    PartitionReport(p.topic, p.partition, p.committed, p.end, lag, age, status)
                )
            reports[info.group] = GroupReport(
                info.group, worst(p.status for p in parts), tuple(parts), now
            )
        self.monitor.forget(seen)
        return reports
