"""The JSON the dashboard serves: plain dicts built from the Monitor's latest sample.

Nothing here holds a secret: the broker is shown as scheme and hosts only (`public_url`),
and snapshots carry no configuration.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from tidings.backends.base import Backend, TopicInfo
from tidings.dashboard.monitor import GroupView, Monitor, Sample
from tidings.runtime import status as st
from tidings.runtime.control import CONTROL_TOPIC

DLQ_TTL = 2.0
"""Seconds a read of the dead-letter topics is reused."""


def public_url(url: str) -> str:
    """Return the broker URL without credentials or options (scheme, hosts and path)."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return url.split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{scheme}://{host}{parts.path}"


def kind(name: str) -> str:
    """Return what a topic is for: events, retry, dlq, status or control."""
    if name == st.STATUS_TOPIC:
        return "status"
    if name == CONTROL_TOPIC:
        return "control"
    if name.endswith(".dlq"):
        return "dlq"
    if name.endswith(".retry"):
        return "retry"
    return "events"


def _group_row(g: GroupView) -> dict[str, Any]:
    return {
        "group": g.group,
        "state": g.state,
        "status": g.status.value,
        "lag": g.lag,
        "lag_seconds": g.lag_seconds,
        "rate": g.rate,
        "history": g.history[-120:],
        "partitions": len(g.partitions),
        "workers": g.workers,
    }


def overview(sample: Sample, broker: str, actions: bool) -> dict[str, Any]:
    """Every group with its lag, status, throughput and workers; the workers in brief."""
    return {
        "time": sample.at,
        "broker": public_url(broker),
        "actions": actions,
        "sample_seconds": round(sample.took, 4),
        "groups": [_group_row(g) for g in sample.groups.values()],
        "workers": [_worker_row(w, sample.at) for w in sample.workers],
    }


def _worker_row(w: dict[str, Any], now: float) -> dict[str, Any]:
    groups = w.get("groups", ())
    return {
        "worker": w.get("worker"),
        "host": w.get("host"),
        "pid": w.get("pid"),
        "app": w.get("app"),
        "version": w.get("version"),
        "seen": round(max(0.0, now - float(w.get("time", now))), 1),
        "uptime": round(max(0.0, now - float(w.get("started", now))), 1),
        "groups": [g.get("group") for g in groups],
        "handled": sum(int(g.get("handled", 0)) for g in groups),
        "failed": sum(int(g.get("failed", 0)) for g in groups),
        "retried": sum(int(g.get("retried", 0)) for g in groups),
        "dead_lettered": sum(int(g.get("dead_lettered", 0)) for g in groups),
        "in_flight": sum(int(g.get("in_flight", 0)) for g in groups),
        "backpressure": any(bool(g.get("backpressure")) or g.get("paused") for g in groups),
    }


def group(sample: Sample, name: str) -> dict[str, Any] | None:
    """One group: its partitions (offsets, lag, owner, status) and what its workers run."""
    g = sample.groups.get(name)
    if g is None:
        return None
    workers = []
    for w in sample.workers:
        for gs in w.get("groups", ()):
            if gs.get("group") != name:
                continue
            age = float(w.get("time", sample.at))
            late = max(0.0, sample.at - age)  # events kept running since the snapshot
            workers.append(
                {
                    "worker": w.get("worker"),
                    "host": w.get("host"),
                    "pid": w.get("pid"),
                    "app": w.get("app"),
                    "assigned": gs.get("assigned", []),
                    "stopped": gs.get("stopped", []),
                    "paused": gs.get("paused", []),
                    "backpressure": gs.get("backpressure", False),
                    "held": gs.get("held", False),
                    "in_flight": gs.get("in_flight", 0),
                    "running_handlers": gs.get("running_handlers", 0),
                    "handled": gs.get("handled", 0),
                    "failed": gs.get("failed", 0),
                    "retried": gs.get("retried", 0),
                    "dead_lettered": gs.get("dead_lettered", 0),
                    "in_flight_events": [
                        {**e, "age": round(float(e.get("age", 0)) + late, 1)}
                        for e in gs.get("in_flight_events", [])
                    ],
                }
            )
    row = _group_row(g)
    row["partitions"] = [
        {
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "end": p.end,
            "lag": p.lag,
            "lag_seconds": p.lag_seconds,
            "status": p.status.value,
            "owner": p.owner,
        }
        for p in g.partitions
    ]
    row["worker_details"] = workers
    row["paused"] = any(bool(w.get("held")) for w in workers)
    return row


def topics(sample: Sample) -> dict[str, Any]:
    """Every topic: partitions, retention, offsets, pending delayed events, next due time."""
    return {
        "time": sample.at,
        "topics": [
            {
                "name": t.name,
                "kind": kind(t.name),
                "partitions": t.partitions,
                "retention": t.retention,
                "start_offsets": list(t.start_offsets),
                "end_offsets": list(t.end_offsets),
                "events": sum(t.end_offsets) - sum(t.start_offsets),
                "delayed_pending": t.delayed_pending,
                "next_due": t.next_due,
            }
            for t in sorted(sample.topics, key=lambda t: t.name)
        ],
    }


class DeadLetters:
    """Dead letters per group, read from the dead-letter topics (cached for `DLQ_TTL`).

    Topic names and offsets come from the monitor's latest sample (a broker's topic listing
    can take seconds); a group's page reads only that group's dead-letter topics.
    """

    def __init__(self, backend: Backend, monitor: Monitor) -> None:
        self.backend = backend
        self.monitor = monitor
        self._lock = threading.Lock()
        self._cache: dict[str | None, tuple[float, list[Any]]] = {}

    def _topics(self, group: str | None) -> tuple[list[str], list[TopicInfo]]:
        infos = self.monitor.latest().topics
        suffix = f".{group}.dlq" if group else ".dlq"
        names = [t.name for t in infos if t.name.endswith(suffix) and len(t.name) > len(suffix)]
        return sorted(names), infos

    def events(self, group: str | None = None) -> list[Any]:
        from tidings.cli import dlq_index

        with self._lock:
            now = time.monotonic()
            hit = self._cache.get(group)
            if hit is None or now - hit[0] > DLQ_TTL:
                names, infos = self._topics(group)
                found = dlq_index.index(self.backend, names, infos=infos)
                hit = self._cache[group] = (now, found)
            return hit[1]

    def listing(self, group: str | None) -> dict[str, Any]:
        rows = []
        for e in self.events(group or None):
            info = e.newest
            if group and info.group not in (None, group):
                continue
            rec = info.record
            rows.append(
                {
                    "id": f"{rec.topic}/{rec.partition}/{rec.offset}",
                    "event_id": e.event_id,
                    "event_type": info.event_type,
                    "group": info.group or "",
                    "dlq_topic": e.dlq_topic,
                    "reason": info.reason,
                    "error_type": info.error_type,
                    "error": info.error_message,
                    "attempts": info.attempts,
                    "topic": info.topic,
                    "partition": info.partition,
                    "offset": info.offset,
                    "failed_at": info.failed_at,
                    "status": e.status.value,
                    "letters": len(e.letters),
                }
            )
        rows.reverse()  # newest first
        names = {t.name for t in self.monitor.latest().topics}
        groups = [g for g in self.monitor.latest().groups if _has_dlq(g, names)]
        return {"groups": groups, "dead_letters": rows}

    def detail(self, topic: str, partition: int, offset: int) -> dict[str, Any] | None:
        from tidings.cli import dlq_index

        infos = self.monitor.latest().topics
        for e in dlq_index.index(self.backend, [topic], infos=infos):
            for info in e.letters:
                rec = info.record
                if (rec.topic, rec.partition, rec.offset) != (topic, partition, offset):
                    continue
                value: Any = None
                text = rec.value.decode("utf-8", "replace") if rec.value is not None else None
                try:
                    value = json.loads(text) if text is not None else None
                    is_json = text is not None
                except ValueError:
                    value, is_json = text, False
                return {
                    "id": f"{topic}/{partition}/{offset}",
                    "event_id": e.event_id,
                    "status": e.status.value,
                    "key": rec.key.decode("utf-8", "replace") if rec.key is not None else None,
                    "headers": [[k, v.decode("utf-8", "replace")] for k, v in rec.headers],
                    "value": value,
                    "value_is_json": is_json,
                    "traceback": info.traceback,
                }
        return None

    def replay(self, group: str) -> int:
        """Replay the group's dead letters not replayed yet (as `tidings dlq replay`).

        Those in the dead-letter topics as of the latest sample: what the page showed.
        """
        from tidings.cli import dlq_index

        with self._lock:
            names, infos = self._topics(group)
            events = [
                e
                for e in dlq_index.index(self.backend, names, infos=infos)
                if e.status is not dlq_index.Status.REPLAYED
            ]
            n = dlq_index.replay(self.backend, events, group)
            self._cache.clear()
            return n


def _has_dlq(group: str, names: set[str]) -> bool:
    suffix = f".{group}.dlq"
    return any(n.endswith(suffix) and len(n) > len(suffix) for n in names)
