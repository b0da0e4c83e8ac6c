"""Dead letters by event id, with their replay status, as `tidings dlq` shows and replays them.

A dead-letter topic may hold several dead letters of one event (it was replayed and failed
again, or a crashed worker dead-lettered it twice), and replay markers
(`dead_letters.replay_marker`) saying which dead letters were replayed. This module folds
them into one `DeadEvent` per (group, event id).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tidings.backends.base import Backend, TopicInfo
from tidings.cli.reader import read_existing
from tidings.records import Record
from tidings.runtime import dead_letters as dl


class Status(StrEnum):
    """Where a dead-lettered event stands."""

    PENDING = "pending"
    """Never replayed."""
    REPLAYED = "replayed"
    """Its newest dead letter was replayed (and it has not failed again since)."""
    FAILED_AGAIN = "failed-again"
    """It was replayed, and failed again: its newest dead letter was not replayed."""


@dataclass
class DeadEvent:
    """Every dead letter and replay marker of one event id in one dead-letter topic."""

    event_id: str
    dlq_topic: str
    letters: list[dl.DeadLetterInfo] = field(default_factory=list)
    replayed: dict[tuple[int, int], Record] = field(default_factory=dict)
    """Replay markers by the (partition, offset) of the dead letter they replayed."""

    @property
    def newest(self) -> dl.DeadLetterInfo:
        return max(self.letters, key=lambda d: (d.record.timestamp, d.record.offset))

    @property
    def status(self) -> Status:
        newest = self.newest.record
        if (newest.partition, newest.offset) in self.replayed:
            return Status.REPLAYED
        return Status.FAILED_AGAIN if self.replayed else Status.PENDING

    @property
    def last_replay(self) -> Record | None:
        """The newest replay marker, if the event was ever replayed."""
        markers = self.replayed.values()
        return max(markers, key=lambda r: r.timestamp) if markers else None


def dlq_topics(backend: Backend, group: str | None) -> list[str]:
    """Return the names of the dead-letter topics of `group` (or of every group)."""
    suffix = f".{group}.dlq" if group else ".dlq"
    return sorted(
        t.name for t in backend.topics() if t.name.endswith(suffix) and len(t.name) > len(suffix)
    )


def dlq_groups(backend: Backend) -> list[str]:
    """Return the groups that have a dead-letter topic (`<topic>.<group>.dlq`)."""
    names = {t.name for t in backend.topics()}
    groups: set[str] = set()
    for name in names:
        if not name.endswith(".dlq"):
            continue
        stem = name.removesuffix(".dlq")
        topics = [t for t in names if stem.startswith(t + ".")]
        if topics:
            groups.add(stem[len(max(topics, key=len)) + 1 :])
    return sorted(groups)


def index(
    backend: Backend, topics: Sequence[str], *, infos: Sequence[TopicInfo] | None = None
) -> list[DeadEvent]:
    """Read the dead-letter topics and return one DeadEvent per event id, oldest first.

    `infos`: the topics' descriptions if the caller has them (see `read_existing`).
    """
    return fold(read_existing(backend, topics, infos=infos))


def fold(records: Iterable[Record]) -> list[DeadEvent]:
    events: dict[tuple[str, str], DeadEvent] = {}
    markers: list[Record] = []
    for record in records:
        if dl.is_replay_marker(record):
            markers.append(record)
            continue
        info = dl.read_dead_letter(record)
        key = (record.topic, info.event_id)
        events.setdefault(key, DeadEvent(info.event_id, record.topic)).letters.append(info)
    for marker in markers:
        replayed = (marker.header(dl.H_REPLAYED) or b"").decode("utf-8", "replace")
        partition, _, offset = replayed.partition("@")
        eid = (marker.header(dl.H_REPLAYED_ID) or b"").decode("utf-8", "replace")
        event = events.get((marker.topic, eid))
        if event is not None and partition.isdigit() and offset.isdigit():
            event.replayed[(int(partition), int(offset))] = marker
    return sorted(
        events.values(), key=lambda e: (e.newest.record.timestamp, e.dlq_topic, e.event_id)
    )


def replay(backend: Backend, events: Sequence[DeadEvent], group: str) -> int:
    """Re-publish the newest dead letter of each event to its topic, for `group` only.

    Each event is replayed once. The replayed events are stored first, then a replay
    marker per event in its dead-letter topic; if the process dies in between, the events
    are replayed again next time (at least once, never lost).
    """
    if not events:
        return 0
    letters = [e.newest.record for e in events]
    stored = backend.produce([dl.replay_record(r, group) for r in letters])
    now = time.time()
    backend.produce(
        [
            dl.replay_marker(letter, f"{m.topic}[{m.partition}]@{m.offset}", now)
            for letter, m in zip(letters, stored, strict=True)
        ]
    )
    return len(letters)
