"""Exactly once on Kafka: one transactional producer per group member (KIP-447).

A member's outputs and its offset commit go in one Kafka transaction: `begin`, produce the
records, `send_offsets_to_transaction` with the consumer's group metadata (so a member the
group has moved past is fenced by the group coordinator), `commit`. The transaction is
opened only for that commit, never while handlers run, so `transaction.timeout.ms` bounds
how long a member killed in the middle of a commit holds back read_committed readers, not
how long a handler may take.

`transactional.id` is ``tidings.tx.<group>.<member>``, the member being the consumer's
`group.instance.id`: a member restarted under the same id (``tidings run --workers``, or a
``group.instance.id`` set in the consumer config) fences its previous incarnation and aborts
its open transaction when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTP

from tidings.backends.kafka.config import KafkaSettings, config_error
from tidings.backends.kafka.errors import describe, kafka_error
from tidings.backends.kafka.logs import QUIET
from tidings.exceptions import TransactionAborted
from tidings.records import OutgoingRecord, TopicPartition

LOG = logging.getLogger("tidings.kafka")

Prepare = Callable[[Sequence[OutgoingRecord]], Sequence[OutgoingRecord]]
"""Checks outputs (raising `PublishError`s such as `TopicNotFound`) and turns them into what
is produced (records due later go to a delay topic)."""


def transactional_id(group: str, member: str) -> str:
    """Return the `transactional.id` of `member` of `group` (stable across its restarts)."""
    return f"tidings.tx.{group}.{member}"


class TransactionalProducer:
    """Commits a member's outputs and offsets in one Kafka transaction; one thread at a time."""

    def __init__(self, settings: KafkaSettings, tid: str, prepare: Prepare) -> None:
        self.settings = settings
        self.tid = tid
        self._prepare = prepare
        self._producer: Producer | None = None
        self._failed: list[str] = []

    def _open(self) -> Producer:
        conf = self.settings.producer_config()
        conf["transactional.id"] = self.tid
        # Long enough for a commit's deliveries (message.timeout.ms must not exceed it);
        # also how long a member killed mid-commit blocks read_committed readers.
        conf.setdefault("transaction.timeout.ms", conf.get("message.timeout.ms", 30_000))
        # A transaction started right after a commit gets CONCURRENT_TRANSACTIONS until the
        # broker has written the markers (a few ms); librdkafka's 100 ms retry backoff
        # would make every commit take 100 ms.
        conf.setdefault("retry.backoff.ms", 5)
        conf.setdefault("error_cb", self._on_error)
        try:
            producer = Producer(conf)
        except (KafkaException, TypeError, ValueError) as exc:
            raise config_error(exc, self.settings, "transactional producer") from exc
        try:
            # Fences an earlier producer with this id and aborts its open transaction.
            producer.init_transactions(self.settings.connect_timeout)
        except KafkaException as exc:
            raise TransactionAborted(
                f"Kafka transactional producer {self.tid} could not start: {describe(exc)}. "
                "Check that the broker is reachable and allows transactions "
                "(transaction.state.log.* settings on a single broker)."
            ) from exc
        self._producer = producer
        return producer

    def _on_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        QUIET.log(level, "Kafka transactional producer %s: %s", self.tid, err.str())

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err.str()}")

    def commit(
        self,
        records: Sequence[OutgoingRecord],
        offsets: Mapping[TopicPartition, int],
        consumer: Consumer,
    ) -> None:
        """Produce `records` and commit `offsets` for `consumer`'s group, atomically.

        Raises:
            TransactionAborted: nothing of it is visible to read_committed readers; a
                fenced or failed producer is replaced before the next commit.
        """
        outgoing = self._prepare(records)  # raises (e.g. TopicNotFound) before anything starts
        producer = self._producer or self._open()
        timeout = self.settings.delivery_timeout
        self._failed.clear()
        try:
            producer.begin_transaction()
            produce = producer.produce
            for rec in outgoing:
                headers: list[tuple[str, str | bytes | None]] | None = (
                    list(rec.headers) if rec.headers else None
                )
                part = -1 if rec.partition is None else rec.partition
                while True:
                    try:
                        produce(rec.topic, rec.value, rec.key, part, self._report, None, 0,
                                headers)  # fmt: skip
                    except BufferError:  # librdkafka's queue is full: let deliveries drain
                        producer.poll(0.01)
                        continue
                    break
            producer.send_offsets_to_transaction(
                [KafkaTP(tp.topic, tp.partition, o) for tp, o in offsets.items()],
                consumer.consumer_group_metadata(),
                timeout,
            )
            self._commit(producer, timeout)
        except KafkaException as exc:
            raise self._aborted(producer, exc) from exc
        if self._failed:  # librdkafka aborts a transaction whose records failed
            raise TransactionAborted(
                f"Kafka transactional producer {self.tid}: records failed "
                f"({'; '.join(self._failed[:3])}); the transaction was aborted."
            )

    @staticmethod
    def _commit(producer: Producer, timeout: float) -> None:
        for attempt in range(3):
            try:
                producer.commit_transaction(timeout)
                return
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is None or not err.retriable() or attempt == 2:
                    raise

    def _aborted(self, producer: Producer, exc: KafkaException) -> TransactionAborted:
        """Abort (or, when fenced or fatal, drop the producer); explain what happened."""
        err = kafka_error(exc)
        fenced = err is not None and (
            err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)
        )
        if err is not None and err.txn_requires_abort() and not fenced:
            try:
                producer.abort_transaction(self.settings.delivery_timeout)
            except KafkaException as abort_exc:
                LOG.warning("Kafka transactional producer %s: abort failed: %s", self.tid,
                            describe(abort_exc))  # fmt: skip
                fenced = True
        else:
            fenced = True
        if fenced:  # start over: a new producer fences this one (and aborts its transaction)
            self._producer = None
            try:
                producer.flush(0)
            except KafkaException:
                pass
        return TransactionAborted(
            f"Kafka transaction of {self.tid} aborted: {describe(exc)}. Nothing of it is "
            "visible to read_committed readers; the events are handled again"
            + (" with a new producer (this one was fenced or failed)." if fenced else ".")
        )

    def close(self) -> None:
        """Drop the producer (an open transaction is aborted by the broker or the next one)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(1.0)
            except KafkaException:
                pass
