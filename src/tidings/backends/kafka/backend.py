"""`KafkaBackend`: the seam (`tidings.backends.base.Backend`) over Apache Kafka."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace

from tidings.backends.base import ConsumerHandle, GroupInfo, RebalanceListener, TopicInfo
from tidings.backends.kafka import groups as kafka_groups
from tidings.backends.kafka.admin import EARLIEST, LATEST, KafkaAdmin
from tidings.backends.kafka.config import load_settings
from tidings.backends.kafka.consumer import KafkaConsumerHandle
from tidings.backends.kafka.delays import DelayScheduler
from tidings.backends.kafka.producer import KafkaProducer
from tidings.backends.kafka.tiers import DelayTopics
from tidings.clock import SYSTEM_CLOCK, Clock
from tidings.partitioner import partition_for
from tidings.records import OutgoingRecord, RecordMetadata, Start, TopicPartition, TopicSpec


class KafkaBackend:
    """A Kafka cluster reached through librdkafka (`kafka://host:port[,host:port]`).

    Options are described in `tidings.backends.kafka.config`. Bounded failure: a broker
    that does not answer makes `produce`, `open_consumer`, `ensure_topics` and the admin
    queries raise `BrokerUnavailable` within `connect_timeout` (default 10 s); a produced
    record that is not acknowledged within `delivery_timeout` (default 30 s) raises
    `DeliveryUncertain` or `PublishError`; when partitions have no leader or fewer in-sync
    replicas than their min.insync.replicas, the message names them and the fix (asking the
    cluster takes at most 5 s more; see `tidings.backends.kafka.replicas.diagnose`).

    Replication: topics get the replicas and min.insync.replicas described in
    `tidings.backends.kafka.replicas` (options ``replication`` and ``min_insync_replicas``).

    Delays: records due later go to internal delay topics; a scheduler thread, started by
    the first group consumer this backend opens (so inside `tidings run` workers), moves
    them to their topic when due (see `tidings.backends.kafka.delays`). `topics()` counts
    pending delays per target topic by reading the undelivered delay records (exact up to
    100,000 of them cluster-wide, a lower bound beyond).

    Raises:
        ConfigurationError: an option or librdkafka property is invalid (named in the message).
    """

    def __init__(
        self, servers: str, *, url: str, clock: Clock = SYSTEM_CLOCK, **options: object
    ) -> None:
        self.url = url
        self.clock = clock
        self.settings = load_settings(servers, options)
        self._admin = KafkaAdmin(self.settings)
        self._producer = KafkaProducer(self.settings, self._admin)
        self._lock = threading.Lock()
        self._scheduler: DelayScheduler | None = None
        self._tiers_ready = False
        self._delay_topics = DelayTopics(self.settings.delay_namespace)

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._admin.ensure_topics(specs)

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        return self.produce_stream((records,))

    async def produce_async(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        now = self.clock.time()
        if any(r.deliver_at is not None and r.deliver_at > now for r in records):
            return await asyncio.to_thread(self.produce, records)  # delays: rare, may block
        return await self._producer.produce_async(records)

    def produce_stream(self, chunks: Iterable[Sequence[OutgoingRecord]]) -> list[RecordMetadata]:
        now = self.clock.time()
        held: dict[int, tuple[str, int]] = {}
        meta = self._producer.produce_stream(self._route(chunks, now, held))
        for i, (topic, partition) in held.items():
            meta[i] = RecordMetadata(topic, partition, -1)
        return meta

    def _route(
        self,
        chunks: Iterable[Sequence[OutgoingRecord]],
        now: float,
        held: dict[int, tuple[str, int]],
    ) -> Iterator[Sequence[OutgoingRecord]]:
        """Send records that are not due yet to a delay tier; note where each belongs."""
        base = 0
        for records in chunks:
            delayed = [
                i for i, r in enumerate(records) if r.deliver_at is not None and r.deliver_at > now
            ]
            if delayed:
                if not self._tiers_ready:
                    self._admin.ensure_topics(self._delay_topics.specs(), implicit=True)
                    self._tiers_ready = True
                out = list(records)
                for i in delayed:
                    rec = records[i]
                    partition = rec.partition
                    if partition is None:
                        partition = partition_for(rec.key, self._admin.partition_count(rec.topic))
                    held[base + i] = (rec.topic, partition)
                    out[i] = self._delay_topics.schedule(rec, partition, now)
                records = out
            yield records
            base += len(records)

    def open_consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str | None = None,
    ) -> ConsumerHandle:
        self._admin.metadata()  # a bounded reachability check before librdkafka retries forever
        partitions = {t: self._admin.partition_count(t) for t in topics}
        if group is not None and self.settings.delays:
            with self._lock:
                if self._scheduler is None:
                    self._scheduler = DelayScheduler(
                        self.settings, self._admin, self._producer, self.clock, self._delay_topics
                    )
                    self._scheduler.start()
        return KafkaConsumerHandle(
            self.settings,
            group,
            topics,
            start=start,
            listener=listener,
            member_id=member_id,
            partitions=partitions,
            offsets=lambda tps, which: self._admin.offsets(
                tps, LATEST if which == "latest" else EARLIEST
            ),
            topic_ids=self._admin.topic_ids,
            prepare=self._transactional,
        )

    def _transactional(self, records: Sequence[OutgoingRecord]) -> list[OutgoingRecord]:
        """Check an exactly-once commit's records (as `produce` does) and route them: those
        due later go to a delay topic.

        Raises:
            TopicNotFound, ConfigurationError, BrokerUnavailable: as `produce`.
        """
        if records:
            self._producer.check(records)
        if not any(r.deliver_at is not None for r in records):
            return list(records)
        return [r for chunk in self._route((records,), self.clock.time(), {}) for r in chunk]

    def topics(self) -> list[TopicInfo]:
        infos = self._admin.topics()
        pending = self._delay_topics.pending(self._admin, self.settings)
        return [
            replace(i, delayed_pending=pending[i.name][0], next_due=pending[i.name][1])
            if i.name in pending
            else i
            for i in infos
        ]

    def groups(self, names: Collection[str] | None = None) -> list[GroupInfo]:
        return kafka_groups.groups(self._admin, names)

    def reset_group(
        self, group: str, topic: str, to: str | float, *, dry_run: bool = False
    ) -> dict[TopicPartition, int]:
        return kafka_groups.reset_group(self._admin, group, topic, to, dry_run=dry_run)

    def close(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.stop()
        self._producer.close()
        self._admin.close()
