"""Delayed delivery on Kafka: tiered delay topics and a scheduler, with no other datastore.

A record due later is written to the delay tier whose wait fits the time left
(``tidings.delay.<tier>``), carrying its target topic, partition and due time in
``tidings-delay-*`` headers. Every record of a tier waits exactly that tier's time after it
was written, so within a tier partition records come due in log order and the scheduler
only ever holds each partition's head in memory: it pauses the partition until the head's
wait is over, then forwards the head to a lower tier or, once due, to its target partition
(original key, value and headers), and commits the tier offset only after Kafka acknowledged
the forward. Records with less than the smallest tier's time left go to the ``due`` tier,
where each is released at its own due time (a head can hold back the one behind it by less
than the smallest tier, 0.2 s).

Guarantees: never delivered before its due time (by the scheduler host's clock); delivered
promptly after it (within about 0.2 s plus one produce, while a scheduler runs); survives
restarts of every process (the state is the tier topics and the scheduler group's offsets);
at least once (a forward whose commit is lost is forwarded again). Schedulers run inside
group workers (`tidings run`), share the tier partitions through the consumer group
``tidings.scheduler``, and tier topics keep records for their wait plus `GRACE`, so delays
survive a week without any worker running.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from tidings.backends.kafka.admin import EARLIEST, LATEST, KafkaAdmin
from tidings.backends.kafka.config import KafkaSettings
from tidings.backends.kafka.consumer import KafkaConsumerHandle, to_record
from tidings.backends.kafka.producer import KafkaProducer
from tidings.clock import Clock
from tidings.exceptions import TidingsError
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
        `limit` records and `connect_timeout`; past either the counts are a lower bound). A
        record being moved between tiers may be counted twice for a moment.
        """
        md = admin.metadata()
        names = [self.topic(t) for t in (DUE, *TIERS)]
        tps = [
            TopicPartition(n, p) for n in names if n in md.topics for p in md.topics[n].partitions
        ]
        if not tps:
            return {}
        committed = admin.committed(self.group)
        starts, ends = admin.offsets(tps, EARLIEST), admin.offsets(tps, LATEST)
        todo = {
            tp: (max(committed.get(tp, 0), starts[tp]), ends[tp])
            for tp in tps
            if max(committed.get(tp, 0), starts[tp]) < ends[tp]
        }
        if not todo:
            return {}
        found: dict[str, tuple[int, float]] = {}
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
                    if target is not None and due is not None:
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


class DelayScheduler:
    """A background thread moving tier heads along; one per backend that runs group workers."""

    def __init__(
        self,
        settings: KafkaSettings,
        admin: KafkaAdmin,
        producer: KafkaProducer,
        clock: Clock,
        names: DelayTopics,
    ) -> None:
        self.settings = settings
        self.names = names
        self.admin = admin
        self.producer = producer
        self.clock = clock
        self.heads: dict[TopicPartition, Head] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: KafkaConsumerHandle | None = None

    def start(self) -> None:
        """Join the scheduler group (creating the tier topics first); idempotent."""
        if self._thread is not None:
            return
        self.admin.ensure_topics(self.names.specs())
        topics = [self.names.topic(t) for t in (DUE, *TIERS)]
        self._handle = KafkaConsumerHandle(
            self.settings,
            self.names.group,
            topics,
            start="earliest",
            listener=self,
            member_id=f"tidings-scheduler-{uuid.uuid4().hex[:8]}",
            partitions=dict.fromkeys(topics, PARTITIONS),
            overrides={
                "queued.max.messages.kbytes": 1024,  # heads only: keep prefetch small
                # A resumed partition joins the next fetch request, after the one in flight
                # (a long poll of up to this long) returns: keep hops prompt.
                "fetch.wait.max.ms": 100,
                # Partitions change hands within a second when workers come and go.
                "heartbeat.interval.ms": 500,
                **self.settings.consumer,
            },
        )
        self._thread = threading.Thread(
            target=self._run, name="tidings-delay-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # RebalanceListener: heads of partitions we lose are re-read by their next owner.
    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self.heads.pop(tp, None)

    def _run(self) -> None:
        handle = self._handle
        assert handle is not None
        try:
            while not self._stop.is_set():
                try:
                    self._step(handle)
                except TidingsError as exc:
                    LOG.warning("Delay scheduler: %s; retrying in 1 s.", exc)
                    self._stop.wait(1.0)
        except Exception:  # pragma: no cover - a bug: say so loudly, the thread cannot go on
            LOG.exception("Delay scheduler stopped by an unexpected error.")
        finally:
            handle.close()

    def _step(self, handle: KafkaConsumerHandle) -> None:
        now = self.clock.time()
        wait = min((h.release - now for h in self.heads.values()), default=0.5)
        for record in handle.fetch(500, min(max(wait, 0.0), 0.5)):
            tp = record.tp
            if tp in self.heads:
                continue  # only the head matters: we seek back to the next one later
            head = self.names.head_of(record)
            if head is None:
                LOG.error(
                    "Delay scheduler: %s[%d]@%d has no valid %s* headers; skipping it.",
                    record.topic,
                    record.partition,
                    record.offset,
                    HEADER_PREFIX,
                )
                handle.commit({tp: record.offset + 1}, sync=True)
                continue
            self.heads[tp] = head
            handle.pause([tp])
        now = self.clock.time()
        ready = {tp: h for tp, h in self.heads.items() if h.release <= now}
        if not ready:
            return
        self.producer.produce([self.names.next_hop(h, now) for h in ready.values()])
        handle.commit({tp: h.record.offset + 1 for tp, h in ready.items()}, sync=True)
        for tp, h in ready.items():
            del self.heads[tp]
            handle.seek(tp, h.record.offset + 1)
            handle.resume([tp])
