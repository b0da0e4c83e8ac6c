"""`KafkaBackend`: the seam (`tidings.backends.base.Backend`) over Apache Kafka."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tidings.backends.base import ConsumerHandle, GroupInfo, RebalanceListener, TopicInfo
from tidings.backends.kafka.admin import KafkaAdmin
from tidings.backends.kafka.config import load_settings
from tidings.backends.kafka.consumer import KafkaConsumerHandle
from tidings.backends.kafka.producer import KafkaProducer
from tidings.clock import SYSTEM_CLOCK, Clock
from tidings.exceptions import ConfigurationError
from tidings.records import OutgoingRecord, RecordMetadata, Start, TopicPartition, TopicSpec


class KafkaBackend:
    """A Kafka cluster reached through librdkafka (`kafka://host:port[,host:port]`).

    Options are described in `tidings.backends.kafka.config`. Bounded failure: a broker
    that does not answer makes `produce`, `open_consumer`, `ensure_topics` and the admin
    queries raise `BrokerUnavailable` within `connect_timeout` (default 10 s); a produced
    record that is not acknowledged within `delivery_timeout` (default 30 s) raises
    `DeliveryUncertain` or `PublishError`.

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

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._admin.ensure_topics(specs)

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        now = self.clock.time()
        if any(r.deliver_at is not None and r.deliver_at > now for r in records):
            raise ConfigurationError("Delayed delivery on Kafka is not implemented yet.")
        return self._producer.produce(records)

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
        return KafkaConsumerHandle(
            self.settings,
            group,
            topics,
            start=start,
            listener=listener,
            member_id=member_id,
            partitions=partitions,
        )

    def topics(self) -> list[TopicInfo]:
        return self._admin.topics()

    def groups(self) -> list[GroupInfo]:
        return self._admin.groups()

    def reset_group(self, group: str, topic: str, to: str | float) -> dict[TopicPartition, int]:
        return self._admin.reset_group(group, topic, to)

    def close(self) -> None:
        self._producer.close()
        self._admin.close()
