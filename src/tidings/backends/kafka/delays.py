"""Delayed delivery on Kafka: tiered delay topics and a scheduler, with no other datastore.

A record due later is written to the delay tier whose wait fits the time left
(``tidings.delay.<tier>``), carrying its target topic, partition and due time in
``tidings-delay-*`` headers. Every record of a tier waits exactly that tier's time after it
was written, so within a tier partition records come due in log order and the scheduler
holds at most the first `HELD` records of each partition in memory (pausing it when that
many wait): whenever the head's wait is over it forwards every ready record of the
partition in one batch to a lower tier or, once due, to its target partition (original key,
value and headers), and commits the tier offset only after Kafka acknowledged the batch.
Records with less than the smallest tier's time left go to the ``due`` tier,
where each is released at its own due time (a head can hold back the one behind it by less
than the smallest tier, 0.2 s).

Guarantees: never delivered before its due time (by the scheduler host's clock); delivered
promptly after it (typically within 0.3 s: the due-tier hold-back, one fetch wait and one
produce, while a scheduler runs); survives restarts of every process (the state is the tier
topics and the scheduler group's offsets); at least once (a forward whose commit is lost is
forwarded again). Schedulers run inside group workers (`tidings run`) and share the tier
partitions through the consumer group ``tidings.scheduler``: when a worker joins or leaves,
the partitions that move pause for a rebalance (about a second), and those of a worker
killed outright wait for its session to time out (``session.timeout.ms``: 10 s for this group).
Tier topics keep records for their wait plus `GRACE`, so delays survive a week without any
worker running.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence

from tidings.backends.kafka.admin import KafkaAdmin
from tidings.backends.kafka.config import KafkaSettings
from tidings.backends.kafka.consumer import KafkaConsumerHandle
from tidings.backends.kafka.producer import KafkaProducer
from tidings.backends.kafka.tiers import DUE, HEADER_PREFIX, PARTITIONS, TIERS, DelayTopics, Head
from tidings.clock import Clock
from tidings.exceptions import ConfigurationError, TidingsError, TopicNotFound
from tidings.records import OutgoingRecord, Record, TopicPartition

SESSION_TIMEOUT_MS = 10_000
"""How long the tier partitions of a worker killed outright wait before another takes them."""

LOG = logging.getLogger("tidings.kafka.delays")
HELD = 200
"""Records held per tier partition; bounds memory whatever the number pending."""


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
        self.heads: dict[TopicPartition, deque[Head]] = {}
        self._expected: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._skipped: set[TopicPartition] = set()
        """Partitions whose records were passed over (queue full) until the next resume."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: KafkaConsumerHandle | None = None

    def start(self) -> None:
        """Join the scheduler group (creating the tier topics first); idempotent."""
        if self._thread is not None:
            return
        self.admin.ensure_topics(self.names.specs(), implicit=True)
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
                # Partitions change hands within a second when workers come and go, and
                # within 10 s (not Kafka's 45) when one is killed outright. Heartbeats come
                # from librdkafka's own thread, so a busy event loop cannot miss them.
                "heartbeat.interval.ms": 500,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
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
            self._expected.pop(tp, None)
            self._paused.discard(tp)
            self._skipped.discard(tp)

    def _run(self) -> None:
        handle = self._handle
        assert handle is not None
        try:
            while not self._stop.is_set():
                try:
                    self._step(handle)
                except TidingsError as exc:  # broker trouble: heads stay, forwarded later
                    LOG.warning("Delay scheduler: %s; retrying in 1 s.", exc)
                    self._stop.wait(1.0)
                except Exception:  # a bug: say so loudly, but keep delays moving
                    LOG.exception("Delay scheduler: unexpected error; retrying in 1 s.")
                    self._stop.wait(1.0)
        finally:
            handle.close()

    def _reroute(self, hop: OutgoingRecord) -> OutgoingRecord:
        if hop.partition is None or hop.partition < self.admin.known_topics.get(hop.topic, 0):
            return hop
        LOG.warning(
            "Delay scheduler: partition %d of %r no longer exists; delivering the delayed "
            "record by its key instead.",
            hop.partition,
            hop.topic,
        )
        return hop._replace(partition=None)

    def _drop_deleted(self, hops: list[OutgoingRecord]) -> list[OutgoingRecord]:
        """Return `hops` without those bound for topics that no longer exist (logged)."""
        self.admin.metadata()
        kept = [hop for hop in hops if hop.topic in self.admin.known_topics]
        for topic in sorted({hop.topic for hop in hops} - {hop.topic for hop in kept}):
            LOG.error(
                "Delay scheduler: topic %r no longer exists; dropping its %d due delayed "
                "record(s) (they cannot be delivered; create the topic again to keep later "
                "ones).",
                topic,
                sum(1 for hop in hops if hop.topic == topic),
            )
        return [self._reroute(hop) for hop in kept]

    def _step(self, handle: KafkaConsumerHandle) -> None:
        now = self.clock.time()
        wait = min((q[0].release - now for q in self.heads.values() if q), default=0.5)
        for record in handle.fetch(500, min(max(wait, 0.0), 0.5)):
            self._hold(handle, record)
        self._release(handle)

    def _hold(self, handle: KafkaConsumerHandle, record: Record) -> None:
        """Keep `record` in its partition's queue, in log order, up to HELD of them."""
        tp = record.tp
        queue = self.heads.setdefault(tp, deque())
        expected = self._expected.get(tp)
        if expected is not None and (
            record.offset < expected or (record.offset > expected and tp in self._skipped)
        ):
            return  # held already, or read again after the resume at `expected`
        if len(queue) >= HELD:
            self._skipped.add(tp)  # read again after the partition is resumed at `expected`
            return
        # Otherwise an offset past `expected` is a gap in the log, not a record missed: a
        # transaction's commit marker (exactly-once consumers write tier records in
        # transactions) takes an offset that no consumer ever sees.
        head = self.names.head_of(record)
        self._expected[tp] = record.offset + 1
        if head is None:
            LOG.error(
                "Delay scheduler: %s[%d]@%d has no valid %s* headers; skipping it.",
                record.topic,
                record.partition,
                record.offset,
                HEADER_PREFIX,
            )
            if not queue:
                handle.commit({tp: record.offset + 1}, sync=True)
            return
        queue.append(head)
        if len(queue) >= HELD and tp not in self._paused:
            handle.pause([tp])
            self._paused.add(tp)

    def _release(self, handle: KafkaConsumerHandle) -> None:
        """Forward every ready record in one batch; commit; resume drained partitions."""
        now = self.clock.time()
        hops: list[OutgoingRecord] = []
        commits: dict[TopicPartition, int] = {}
        released: dict[TopicPartition, int] = {}
        for tp, queue in self.heads.items():
            n = 0
            while n < len(queue) and queue[n].release <= now:
                hops.append(self.names.next_hop(queue[n], now))
                n += 1
            if n:
                commits[tp] = queue[n - 1].record.offset + 1
                released[tp] = n
        if not hops:
            return
        try:
            self.producer.produce(hops)
        except TopicNotFound:  # a target topic was deleted: never block the tier on it
            self.producer.produce(self._drop_deleted(hops))
        except ConfigurationError:  # a target partition is gone: never block the tier on it
            self.producer.produce([self._reroute(hop) for hop in hops])
        handle.commit(commits, sync=True)
        for tp, n in released.items():
            queue = self.heads[tp]
            for _ in range(n):
                queue.popleft()
            if tp in self._paused and len(queue) < HELD // 2:
                handle.seek(tp, self._expected[tp])
                handle.resume([tp])
                self._paused.discard(tp)
                self._skipped.discard(tp)
