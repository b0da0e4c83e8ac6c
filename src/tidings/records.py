"""Plain records that cross the backend seam, in both directions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

Headers = tuple[tuple[str, bytes], ...]
Start = Literal["earliest", "latest"]

UNREADABLE_HEADERS = "tidings-unreadable-headers"
"""A backend that cannot read a stored record's headers (a name that is not UTF-8, a
truncated or unknown layout) hands the record over with this one header instead, its value
saying what is wrong; the runtime dead-letters it with reason ``bad_headers``."""


class TopicPartition(NamedTuple):
    """A partition of a topic."""

    topic: str
    partition: int


class Record(NamedTuple):
    """A record as stored by a backend and handed to the runtime.

    A NamedTuple rather than a frozen dataclass: every fetched event builds one, and a
    NamedTuple costs a third as much to create.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: float
    """Seconds since the epoch at which the broker stored the record."""

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """Return the last value of header `name`, or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None


class OutgoingRecord(NamedTuple):
    """A record to store. `partition=None` lets the murmur2 partitioner choose by key.

    A NamedTuple rather than a dataclass: publishing builds one per event, and a frozen
    dataclass costs twice as much to create.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None
    deliver_at: float | None = None
    """Seconds since the epoch before which the record must not be delivered (delays)."""


class RecordMetadata(NamedTuple):
    """Where a produced record was stored. For a delayed record, offset is -1 until due."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic declaration: name, partition count, retention, and on Kafka replication.

    A setting left None is not declared: the topic is created with 1 partition and the
    broker's default retention, and an existing topic's value is accepted. A stated setting
    must match an existing topic (`Backend.ensure_topics` raises ConfigurationError).
    `replication` (copies of each partition; None: the app's default, else the broker's) and
    `config` (broker topic properties such as ``min.insync.replicas``) matter on Kafka only;
    the embedded and memory brokers keep one copy and ignore them.
    """

    name: str
    partitions: int | None = None
    retention: timedelta | None = None
    replication: int | None = None
    config: tuple[tuple[str, str], ...] = ()

    @property
    def partitions_or_default(self) -> int:
        """The partition count to create the topic with (1 when not declared)."""
        return 1 if self.partitions is None else self.partitions
