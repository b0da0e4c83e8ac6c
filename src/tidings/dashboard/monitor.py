"""What the dashboard knows: the workers' status snapshots and samples of the broker.

Two background threads: `StatusFeed` follows `tidings.status` and keeps the newest snapshot
per worker; `Monitor` samples topics and groups every `interval` seconds, works out lag in
events and seconds and each group's status over a window (`tidings.instrumentation.lag`),
and keeps a throughput history per group. Requests read the last sample; they never wait
for the broker (except dead letters, read on demand and cached briefly).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.backends.base import Backend, GroupInfo, TopicInfo
from tidings.instrumentation.lag import HeadClock, LagMonitor, Status, lag_seconds, worst
from tidings.records import TopicPartition
from tidings.runtime import status as st

log = logging.getLogger("tidings.dashboard")

INTERNAL_GROUPS = ("tidings.scheduler",)
HISTORY = 10 * 60.0
"""Seconds of throughput history kept per group (the overview's sparkline)."""


class StatusFeed:
    """Follows the status topic; `current()` returns the snapshots of live workers."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        self.backend.ensure_topics([st.STATUS_SPEC])
        self._thread = threading.Thread(target=self._run, name="tidings-status-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def add(self, key: bytes | None, value: bytes | None) -> None:
        """Take one status record (newest per worker wins; a tombstone forgets it)."""
        if key is None:
            return
        worker = key.decode("utf-8", "replace")
        snap = st.parse(value)
        with self._lock:
            if snap is None:
                self._latest.pop(worker, None)
                return
            old = self._latest.get(worker)
            if old is None or _num(snap.get("time")) >= _num(old.get("time")):
                self._latest[worker] = snap

    def current(self, now: float) -> list[dict[str, Any]]:
        """Return the snapshots of workers alive at `now`, by worker id."""
        with self._lock:
            snaps = list(self._latest.values())
            for snap in snaps:  # forget workers gone long ago
                if now - _num(snap.get("time")) > 10 * st.stale_after(snap):
                    self._latest.pop(snap["worker"], None)
        return sorted((s for s in snaps if st.alive(s, now)), key=lambda s: str(s["worker"]))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:
                log.warning("reading %s failed (%r); retrying in 2 s", st.STATUS_TOPIC, exc)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        # From the start: the topic is compacted on Kafka and keeps an hour elsewhere (a
        # few thousand small records), and no topic listing is needed (slow on big brokers).
        handle = self.backend.open_consumer(
            None, [st.STATUS_TOPIC], start="earliest", listener=None
        )
        try:
            while not self._stop.is_set():
                records = handle.fetch(500, 0.5)
                for record in records:
                    self.add(record.key, record.value)
                if not records:
                    self.ready.set()
        finally:
            handle.close()


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class PartitionView:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_seconds: float | None
    """None while the record at the committed offset was not read yet."""
    status: Status
    owner: str | None


@dataclass
class GroupView:
    group: str
    state: str
    partitions: list[PartitionView]
    workers: list[str]
    status: Status
    lag: int
    lag_seconds: float
    rate: float
    history: list[float] = field(default_factory=list)


@dataclass
class Sample:
    """Everything one look at the broker found (replaced whole, never mutated)."""

    at: float
    topics: list[TopicInfo]
    groups: dict[str, GroupView]
    workers: list[dict[str, Any]]
    took: float


class Monitor:
    """Samples the broker every `interval` seconds in a thread; `sample` is the latest."""

    def __init__(self, backend: Backend, *, interval: float = 2.0, window: float = 30.0) -> None:
        self.backend = backend
        self.interval = interval
        self.feed = StatusFeed(backend)
        self.lag = LagMonitor(window)
        self.heads = HeadClock(backend)
        self.sample: Sample | None = None
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = threading.Condition()
        self.on_sample: list[Callable[[Sample], None]] = []
        """Called with each new sample, on the sampling thread (e.g. to pre-render JSON)."""

    def start(self) -> None:
        self.feed.start()
        self._thread = threading.Thread(target=self._run, name="tidings-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.feed.stop()
        if self._thread is not None:
            self._thread.join(10)

    def latest(self, timeout: float = 30.0) -> Sample:
        """Return the latest sample, waiting for the first one."""
        with self._sampled:
            self._sampled.wait_for(lambda: self.sample is not None, timeout)
        if self.sample is None:
            raise TimeoutError("the dashboard has not sampled the broker yet")
        return self.sample

    def refresh(self) -> Sample:
        """Sample now (also done by the thread every `interval` seconds)."""
        sample = self._take()
        for listener in self.on_sample:
            listener(sample)
        with self._sampled:
            self.sample = sample
            self._sampled.notify_all()
        return sample

    def _run(self) -> None:
        self.feed.ready.wait(2.0)
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:
                log.warning("sampling the broker failed: %r", exc)
                if self.sample is None:  # nothing to show yet: try again soon
                    self._stop.wait(min(0.5, self.interval))
                    continue
            self._stop.wait(self.interval)

    def _take(self) -> Sample:
        t0 = time.perf_counter()
        now = time.time()
        try:
            topics = self.backend.topics()
        except Exception as exc:
            if self.sample is None:
                raise
            # A busy Kafka cluster can fail one listing (a topic deleted meanwhile): keep
            # the last topic list rather than showing nothing for a whole interval.
            log.warning("listing topics failed (%r); showing the previous listing", exc)
            topics = self.sample.topics
        infos = [g for g in self.backend.groups() if g.group not in INTERNAL_GROUPS]
        workers = self.feed.current(now)
        starts = {
            TopicPartition(t.name, p): s for t in topics for p, s in enumerate(t.start_offsets)
        }
        wanted: dict[tuple[str, TopicPartition], int] = {}
        for info in infos:
            for p in info.partitions:
                tp = TopicPartition(p.topic, p.partition)
                committed = p.committed if p.committed is not None else starts.get(tp, 0)
                if committed < p.end:
                    wanted[(info.group, tp)] = committed
        stamps = self.heads.timestamps(wanted)
        # Ages are taken from now on: a record published while the broker was read is
        # younger than a time read before, and showed lag with 0.0 s (GroupEvaluator too).
        now = time.time()
        groups: dict[str, GroupView] = {}
        seen: list[tuple[str, TopicPartition]] = []
        reported = sorted({g["group"] for w in workers for g in w.get("groups", ())})
        by_name = {g.group: g for g in infos}
        for name in sorted(set(by_name) | set(reported)):
            info = by_name.get(name) or GroupInfo(name, "unknown")
            owners, stopped = _owners(workers, name)
            parts: list[PartitionView] = []
            for p in info.partitions:
                tp = TopicPartition(p.topic, p.partition)
                committed = p.committed if p.committed is not None else starts.get(tp, 0)
                self.lag.observe(name, tp, committed, p.end, now)
                seen.append((name, tp))
                parts.append(
                    PartitionView(
                        p.topic,
                        p.partition,
                        p.committed,
                        p.end,
                        max(0, p.end - committed),
                        _seconds(committed, p.end, stamps.get((name, tp)), now),
                        self.lag.status(name, tp, stopped=tp in stopped),
                        owners.get(tp) or p.member,
                    )
                )
            hist = self._history.setdefault(name, deque())
            hist.append((now, sum(p.committed or 0 for p in info.partitions)))
            while hist and now - hist[0][0] > HISTORY:
                hist.popleft()
            rates = _rates(hist)
            groups[name] = GroupView(
                group=name,
                state=info.state,
                partitions=parts,
                workers=sorted({w for w in owners.values()} | _reporting(workers, name)),
                status=worst(p.status for p in parts),
                lag=sum(p.lag for p in parts),
                lag_seconds=max((p.lag_seconds or 0.0 for p in parts), default=0.0),
                rate=rates[-1] if rates else 0.0,
                history=rates,
            )
        self.lag.forget(seen)
        for gone in [g for g in self._history if g not in groups]:
            del self._history[gone]
        return Sample(now, topics, groups, workers, time.perf_counter() - t0)


def _seconds(committed: int, end: int, stamp: float | None, now: float) -> float | None:
    if committed < end and stamp is None:
        return None
    return round(lag_seconds(committed, end, stamp, now), 3)


def _owners(
    workers: list[dict[str, Any]], group: str
) -> tuple[dict[TopicPartition, str], set[TopicPartition]]:
    """Return which worker owns each partition of `group`, and the stopped/paused ones."""
    owners: dict[TopicPartition, str] = {}
    stopped: set[TopicPartition] = set()
    for w in workers:
        for g in w.get("groups", ()):
            if g.get("group") != group:
                continue
            for topic, partition in g.get("assigned", ()):
                owners[TopicPartition(topic, partition)] = w["worker"]
                if g.get("held"):  # paused on request: stopped on purpose
                    stopped.add(TopicPartition(topic, partition))
            for topic, partition, *_ in g.get("stopped", ()):
                stopped.add(TopicPartition(topic, partition))
    return owners, stopped


def _reporting(workers: list[dict[str, Any]], group: str) -> set[str]:
    return {w["worker"] for w in workers if any(g.get("group") == group for g in w["groups"])}


def _rates(hist: deque[tuple[float, int]]) -> list[float]:
    """Events committed per second between consecutive samples."""
    points = list(hist)
    return [
        round(max(0, b[1] - a[1]) / (b[0] - a[0]), 2)
        for a, b in itertools.pairwise(points)
        if b[0] > a[0]
    ]
