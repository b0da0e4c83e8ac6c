"""Status snapshots: what each worker runs now, published through the broker.

Every runner (`tidings run`, `app.run()`, `app.running()`) publishes a small JSON snapshot
every `interval` seconds (5 s by default) to the internal topic `tidings.status`, keyed by
its worker id, and a last one with ``"state": "stopped"`` when it stops. The topic is
compacted on Kafka (one snapshot per worker survives); the embedded and memory brokers keep
every snapshot for an hour, and readers keep the newest per key. A reader treats a worker
as gone once its snapshot says stopped or is older than `stale_after(snapshot)` seconds
(it died without saying so). No extra datastore: the dashboard reads the topic.

Building a snapshot reads counters the runtime keeps anyway (`GroupWorker.statistics`,
`CommitTracker.heads`): a few microseconds per group every few seconds, off the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from tidings.backends.base import Backend, ConsumerHandle
from tidings.instrumentation.lag import GroupEvaluator, GroupReport, Status
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec
from tidings.runtime.control import CONTROL_SPEC, CONTROL_TOPIC, read_control
from tidings.runtime.group_worker import GroupWorker

log = logging.getLogger("tidings.status")

STATUS_TOPIC = "tidings.status"
STATUS_SPEC = TopicSpec(
    name=STATUS_TOPIC,
    partitions=1,
    retention=timedelta(hours=1),
    config=(("cleanup.policy", "compact,delete"),),
)
"""One partition (a handful of small records per worker per minute); compacted on Kafka."""

DEFAULT_INTERVAL = 5.0
SCHEMA = 1
CONTROL_WAIT = 0.2
"""Seconds the status thread waits for pause/resume requests before each snapshot."""
WINDOW_SAMPLES = 6
"""A group's status is judged over its last this many samples, one per status interval
(about 30 s at the default 5 s)."""
MAX_RUNNING = 20
"""In-flight events listed per group in a snapshot (the oldest first)."""


def worker_id() -> str:
    """Return a new worker id: host, process id and a short random part (unique per runner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _version() -> str:
    from tidings import __version__

    return __version__


def group_status(worker: GroupWorker, now: float) -> dict[str, Any]:
    """Describe one group worker: counts, assignment, stopped and paused partitions, heads."""
    stats = worker.statistics()
    stopped = worker.stopped()
    paused_all, paused = worker.backpressure()
    heads = sorted(worker.tracker.heads(), key=lambda h: h[2])
    running = [
        {
            "topic": part.tp.topic,
            "partition": part.tp.partition,
            "offset": rec.offset,
            "key": rec.key.decode("utf-8", "replace") if rec.key is not None else None,
            "age": round(max(0.0, now - fetched), 3),
            "in_flight": part.unfinished,
            "running": part.running,
        }
        for part, rec, fetched in heads[:MAX_RUNNING]
    ]
    return {
        "group": worker.group,
        "topics": sorted(worker.routes),
        "assigned": [[tp.topic, tp.partition] for tp in stats["assigned"]],
        "stopped": [[tp.topic, tp.partition, why] for tp, why in sorted(stopped.items())],
        "paused": [[tp.topic, tp.partition] for tp in paused if tp not in stopped],
        "backpressure": paused_all,
        "held": worker.held,
        "in_flight": stats["in_flight"],
        "in_flight_bytes": stats["in_flight_bytes"],
        "running_handlers": sum(r.running for r in worker.routes.values()),
        "received": stats["received"],
        "handled": stats["handled"],
        "skipped": stats["skipped"],
        "failed": stats["failed_attempts"],
        "retried": stats["retried"],
        "dead_lettered": stats["dead_lettered"],
        "oldest": running[0] if running else None,
        "in_flight_events": running,
        **lag_status(worker.lag_report),
    }


def lag_status(report: GroupReport | None) -> dict[str, Any]:
    """The snapshot fields of a group's lag report (none before the first sample)."""
    if report is None:
        return {}
    return {
        "status": report.status.value,
        "lag": report.lag,
        "lag_seconds": _rounded(report.lag_seconds),
        "partitions": [
            [p.topic, p.partition, p.lag, _rounded(p.lag_seconds), p.status.value]
            for p in report.partitions
        ],
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


class StatusReporter:
    """Publishes this runner's status snapshot every `interval` seconds from a thread.

    Before each snapshot, the same thread reads `tidings.control` and pauses or resumes
    this runner's groups as asked there (`tidings.runtime.control`), so a request takes
    effect within one interval. Failures are logged (once per streak) and
    never reach the consumers.
    """

    def __init__(
        self,
        backend: Backend,
        app: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        worker: str | None = None,
    ) -> None:
        self.backend = backend
        self.app = app
        self.interval = interval
        self.worker = worker or worker_id()
        self.started = time.time()
        self.version = _version()
        self._workers: list[GroupWorker] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.lag = GroupEvaluator(backend, samples=WINDOW_SAMPLES)

    def sample_lag(self) -> None:
        """Sample every group's lag and judge its status (`GroupWorker.lag_report`)."""
        try:
            by_group = {w.group: w for w in self._workers}
            infos = [g for g in self.backend.groups(list(by_group)) if g.group in by_group]
            stopped: dict[str, set[TopicPartition]] = {}
            known: dict[TopicPartition, tuple[int, float]] = {}
            for w in self._workers:
                stopped[w.group] = set(w.stopped()) | (set(w.assigned) if w.held else set())
                for part, rec, _ in w.tracker.heads():
                    known[part.tp] = (rec.offset, rec.timestamp)
            reports = self.lag.sample(infos, stopped=stopped, known=known)
        except Exception as exc:
            log.warning("could not sample consumer lag: %r", exc)
            return
        for group, worker in by_group.items():
            worker.lag_report = reports.get(group) or GroupReport(group, Status.OK, (), 0.0)

    def snapshot(self, state: str = "running") -> dict[str, Any]:
        """Build the snapshot of this runner now."""
        mono = time.monotonic()
        host, pid, _ = self.worker.rsplit(":", 2)
        return {
            "schema": SCHEMA,
            "worker": self.worker,
            "host": host,
            "pid": int(pid),
            "app": self.app,
            "version": self.version,
            "state": state,
            "time": time.time(),
            "started": self.started,
            "interval": self.interval,
            "groups": [group_status(w, mono) for w in self._workers],
        }

    def publish(self, state: str = "running") -> None:
        """Publish one snapshot now (errors are logged, not raised)."""
        try:
            value = json.dumps(self.snapshot(state), separators=(",", ":")).encode()
            self.backend.produce(
                [OutgoingRecord(STATUS_TOPIC, self.worker.encode(), value, partition=0)]
            )
        except Exception as exc:
            if not self._failing:
                log.warning("could not publish the status snapshot to %s: %r", STATUS_TOPIC, exc)
            self._failing = True
        else:
            self._failing = False

    def start(self, workers: Sequence[GroupWorker]) -> None:
        """Declare the status topics, publish a first snapshot and keep publishing."""
        self._workers = list(workers)
        self.sample_lag()
        try:
            self.backend.ensure_topics([STATUS_SPEC, CONTROL_SPEC])
            control = self.backend.open_consumer(
                None, [CONTROL_TOPIC], start="earliest", listener=None
            )
        except Exception as exc:
            log.warning("could not open %s (%r); no status snapshots", STATUS_TOPIC, exc)
            return
        self.publish()
        self._thread = threading.Thread(
            target=self._loop, args=(control,), name="tidings-status", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing, then publish the final "stopped" snapshot."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self._thread = None
        self.publish("stopped")

    def _loop(self, control: ConsumerHandle) -> None:
        try:
            while True:
                self._follow(control)
                if self._stop.wait(self.interval):
                    return
                self.sample_lag()
                self.publish()
        finally:
            control.close()

    def _follow(self, control: ConsumerHandle) -> None:
        """Apply new pause/resume requests (read once per snapshot: cheap when idle)."""
        by_group = {w.group: w for w in self._workers}
        try:
            records = control.fetch(500, CONTROL_WAIT)
        except Exception as exc:
            log.warning("reading %s failed: %r", CONTROL_TOPIC, exc)
            return
        for record in records:
            request = read_control(record)
            worker = by_group.get(request[0]) if request is not None else None
            if request is not None and worker is not None:
                worker.hold(request[1])


def stale_after(snapshot: dict[str, Any]) -> float:
    """Seconds after its time at which a snapshot's worker counts as dead."""
    interval = snapshot.get("interval")
    every = float(interval) if isinstance(interval, int | float) else DEFAULT_INTERVAL
    return max(3 * every, every + 10.0)


def parse(value: bytes | None) -> dict[str, Any] | None:
    """Decode a status record's value; None for a tombstone or anything unreadable."""
    if not value:
        return None
    try:
        snap = json.loads(value)
    except ValueError:
        return None
    if not isinstance(snap, dict) or not isinstance(snap.get("worker"), str):
        return None
    return snap


def alive(snapshot: dict[str, Any], now: float) -> bool:
    """Return whether the snapshot's worker is running (not stopped, not silent too long)."""
    if snapshot.get("state") != "running":
        return False
    at = snapshot.get("time")
    return isinstance(at, int | float) and now - at <= stale_after(snapshot)


def read_snapshots(backend: Backend, *, timeout: float = 3.0) -> list[dict[str, Any]]:
    """Read `tidings.status` once: the newest snapshot of each worker alive now.

    For one-shot readers (`tidings groups describe`); the dashboard follows the topic
    instead. Reads until the topic is drained or `timeout` seconds passed; [] when no
    worker ever reported (the topic is missing).
    """
    try:
        handle = backend.open_consumer(None, [STATUS_TOPIC], start="earliest", listener=None)
    except Exception:
        return []
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    got = False
    try:
        while time.monotonic() < deadline:
            records = handle.fetch(500, 0.2)
            for record in records:
                snap = parse(record.value)
                worker = record.key.decode("utf-8", "replace") if record.key else None
                if snap is None:
                    latest.pop(worker or "", None)
                elif _newer(snap, latest.get(snap["worker"])):
                    latest[snap["worker"]] = snap
            got = got or bool(records)
            if got and not records:
                break
    except Exception as exc:
        log.debug("reading %s failed: %r", STATUS_TOPIC, exc)
    finally:
        handle.close()
    now = time.time()
    return sorted((s for s in latest.values() if alive(s, now)), key=lambda s: s["worker"])


def _newer(snap: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return True
    at, before = snap.get("time"), old.get("time")
    return not isinstance(before, int | float) or (isinstance(at, int | float) and at >= before)
