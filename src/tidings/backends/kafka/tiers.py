"""Delay tiers: names of the delay topics, and how a delayed record moves through them.

See `tidings.backends.kafka.delays` for the scheme. A tier record is the original record
(key, value, headers) plus ``tidings-delay-topic``, ``tidings-delay-partition`` and
``tidings-delay-due`` headers naming where it goes and when.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from tidings.backends.kafka import groups as kafka_groups
from tidings.backends.kafka.admin import EARLIEST, LATEST, KafkaAdmin
from tidings.backends.kafka.config import KafkaSettings
from tidings.backends.kafka.consumer import to_record
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec

LOG = logging.getLogger("tidings.kafka.delays")

TOPIC_PREFIX = "tidings.delay."
SCHEDULER_GROUP = "tidings.scheduler"
HEADER_PREFIX = "tidings-delay-"
H_TOPIC, H_PARTITION, H_DUE = "tidings-delay-topic", "tidings-delay-partition", "tidings-delay-due"
PARTITIONS = 4
GRACE = timedelta(days=7)
SCAN_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    wait: float
    """Seconds every record of this tier waits; 0 for the `due` tier (until its due time)."""


DUE = Tier("due", 0.0)
TIERS = (
    Tier("200ms", 0.2),
    Tier("1s", 1),
    Tier("5s", 5),
    Tier("30s", 30),
    Tier("5m", 300),
    Tier("1h", 3600),
    Tier("6h", 6 * 3600),
    Tier("1d", 86400),
    Tier("7d", 7 * 86400),
)


def tier_for(remaining: float) -> Tier:
    """Return the longest tier whose wait fits in `remaining` seconds (`DUE` if none does)."""
    fit = DUE
    for tier in TIERS:
        if tier.wait <= remaining:
            fit = tier
    return fit


@dataclass(frozen=True, slots=True)
class DelayTopics:
    """Names of the tier topics and scheduler group; a namespace isolates one deployment
    (backend option ``delay_namespace``) from others sharing the cluster."""

    namespace: str = ""

    @property
    def prefix(self) -> str:
        return TOPIC_PREFIX + (f"{self.namespace}." if self.namespace else "")

    @property
    def group(self) -> str:
        return SCHEDULER_GROUP + (f".{self.namespace}" if self.namespace else "")

    def topic(self, tier: Tier) -> str:
        return self.prefix + tier.name

    def tier_of(self, topic: str) -> Tier | None:
        name = topic.removeprefix(self.prefix)
        return next((t for t in (DUE, *TIERS) if t.name == name), None)

    def specs(self) -> list[TopicSpec]:
        return [
            TopicSpec(self.topic(t), PARTITIONS, GRACE + timedelta(seconds=t.wait))
            for t in (DUE, *TIERS)
        ]

    def schedule(self, rec: OutgoingRecord, partition: int, now: float) -> OutgoingRecord:
        """Wrap `rec` (due at `rec.deliver_at`, bound for `partition`) into a tier record."""
        assert rec.deliver_at is not None
        headers = (
            *(h for h in rec.headers if not h[0].startswith(HEADER_PREFIX)),
            (H_TOPIC, rec.topic.encode()),
            (H_PARTITION, b"%d" % partition),
            (H_DUE, repr(rec.deliver_at).encode()),
        )
        tier = tier_for(rec.deliver_at - now)
        return OutgoingRecord(self.topic(tier), rec.key, rec.value, headers)

    def head_of(self, record: Record) -> Head | None:
        """Read a tier record's routing headers; None if they are missing or malformed."""
        tier = self.tier_of(record.topic)
        topic, part, due = record.header(H_TOPIC), record.header(H_PARTITION), record.header(H_DUE)
        if tier is None or topic is None or part is None or due is None:
            return None
        try:
            due_at, partition = float(due), int(part)
        except ValueError:
            return None
        release = due_at if tier is DUE else min(record.timestamp + tier.wait, due_at)
        return Head(record, topic.decode(), partition, due_at, release)

    def pending(
        self, admin: KafkaAdmin, settings: KafkaSettings, limit: int = SCAN_LIMIT
    ) -> dict[str, tuple[int, float]]:
        """Count the delayed records not yet delivered, per target topic, with the next due.

        Reads the tier records past the scheduler group's committed offsets (bounded by
        `limit` records and `connect_timeout`; past either the counts are a lower bound).
        Just after a record is delivered it may still be counted for a moment (until the
        scheduler's commit lands).
        """
        md = admin.metadata()
        names = [self.topic(t) for t in (DUE, *TIERS)]
        tps = [
            TopicPartition(n, p) for n in names if n in md.topics for p in md.topics[n].partitions
        ]
        if not tps:
            return {}
        committed = kafka_groups.committed(admin, self.group)
        starts, ends = admin.offsets(tps, EARLIEST), admin.offsets(tps, LATEST)
        todo = {
            tp: (max(committed.get(tp, 0), starts[tp]), ends[tp])
            for tp in tps
            if max(committed.get(tp, 0), starts[tp]) < ends[tp]
        }
        if not todo:
            return {}
        found: dict[str, tuple[int, float]] = {}
        counted: set[int] = set()
        reader = Consumer(
            settings.consumer_config(f"tidings.scan.{uuid.uuid4().hex}", start="earliest")
        )
        try:
            reader.assign([KafkaTP(tp.topic, tp.partition, lo) for tp, (lo, _) in todo.items()])
            seen, deadline = 0, time.monotonic() + settings.connect_timeout
            while todo and seen < limit and time.monotonic() < deadline:
                for msg in reader.consume(1000, 0.1):
                    if msg.error() is not None:
                        continue
                    seen += 1
                    record = to_record(msg)
                    target, due = record.header(H_TOPIC), record.header(H_DUE)
                    identity = hash((record.key, record.value, record.headers))
                    if target is not None and due is not None and identity not in counted:
                        counted.add(identity)  # a copy caught mid-hop in two tiers counts once
                        count, first = found.get(target.decode(), (0, math.inf))
                        found[target.decode()] = (count + 1, min(first, float(due)))
                    if record.offset + 1 >= todo.get(record.tp, (0, 0))[1]:
                        todo.pop(record.tp, None)
        except (KafkaException, ValueError) as exc:
            LOG.warning("Could not count pending delayed records: %s", exc)
        finally:
            reader.close()
        return found

    def next_hop(self, head: Head, now: float) -> OutgoingRecord:
        """Where `head` goes now: its target when due, else the tier that fits the time left."""
        rec = head.record
        if head.due <= now:
            headers = tuple(h for h in rec.headers if not h[0].startswith(HEADER_PREFIX))
            return OutgoingRecord(head.target, rec.key, rec.value, headers, head.partition)
        tier = tier_for(head.due - now)
        return OutgoingRecord(self.topic(tier), rec.key, rec.value, rec.headers)


@dataclass(frozen=True, slots=True)
class Head:
    """The first unforwarded record of a tier partition, and when it may move on."""

    record: Record
    target: str
    partition: int
    due: float
    release: float
