"""A group member (or, with group None, a plain reader) over a librdkafka consumer.

librdkafka tracks positions; the handle adds what the seam promises on top:

* `fetch` returns as soon as one record is ready (one `poll`, then what is already buffered),
  and serves heartbeats and rebalance callbacks even when every partition is paused.
* Rebalance callbacks assign first, then tell the listener, so the listener may `seek` and
  `pause` the partitions it was just given; a lost assignment is reported as revoked.
* `commit` only commits partitions this member owns, so a late commit can never move a new
  owner's offset; a commit refused because the group is rebalancing is logged and dropped
  (the records are redelivered to the new owner: at least once). Commits carry the topic's
  id, and a newly assigned partition starts where `start_offsets` says ("start applies
  once": out-of-range or missing offsets of a topic read before start at the earliest).
* A consumed topic deleted, or deleted and created again, is noticed by `TopicWatch`: said
  once while it is gone, and a recreated topic's partitions restart at their earliest
  offset (to the listener: revoked, then assigned again).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
)
from confluent_kafka import TopicPartition as KafkaTP

from tidings.backends.base import RebalanceListener
from tidings.backends.kafka.config import KafkaSettings, config_error
from tidings.backends.kafka.errors import describe, kafka_error
from tidings.backends.kafka.logs import QUIET
from tidings.backends.kafka.start_offsets import OffsetLookup, starting_points
from tidings.backends.kafka.topic_watch import TopicIds, TopicWatch
from tidings.backends.kafka.transactions import Prepare, TransactionalProducer, transactional_id
from tidings.exceptions import BrokerError, TransactionAborted
from tidings.records import Headers, OutgoingRecord, Record, Start, TopicPartition

LOG = logging.getLogger("tidings.kafka")


LEAVE_WAIT = 5.0
CLOSE_WAIT = 30.0
"""Seconds `close` waits for librdkafka's own close (final commits, leaving the group)
before it gives up on it with a warning: a client stuck on a broker must not hang the app."""
"""Seconds `close` waits for the revocation of a member's partitions before closing."""

# What a deleted topic looks like to a consumer.
GONE = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)

# Commit refusals that only mean "the group moved on": the new owner redelivers.
REBALANCING = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._NO_OFFSET,
        KafkaError._STATE,
    }
)


def _headers(
    raw: list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None],
) -> Headers:
    """Return librdkafka's header list as a tuple of (name, bytes).

    librdkafka hands out (str, bytes) pairs; a null value (None) from a foreign producer
    becomes b"". The common case is one C-level tuple() and a cheap scan.
    """
    items = list(raw.items()) if isinstance(raw, dict) else raw
    out = tuple(items)
    for _, value in out:
        if value.__class__ is not bytes:
            return tuple((k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items)
    return out  # type: ignore[return-value]  # checked: every value is bytes


def to_record(msg: Message) -> Record:
    """Convert a librdkafka message (without error) into a `Record`."""
    kind, ms = msg.timestamp()
    raw = msg.headers()
    return Record(
        msg.topic() or "",
        msg.partition() or 0,
        msg.offset() or 0,
        msg.key(),
        msg.value(),
        _headers(raw) if raw else (),
        ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else time.time(),
    )


class KafkaConsumerHandle:
    """`ConsumerHandle` over one librdkafka consumer; used from one thread at a time."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str | None,
        topics: Sequence[str],
        *,
        start: Start,
        listener: RebalanceListener | None,
        member_id: str | None,
        partitions: Mapping[str, int],
        overrides: Mapping[str, object] | None = None,
        offsets: OffsetLookup | None = None,
        topic_ids: TopicIds | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        self.group = group
        self._settings = settings
        self._prepare = prepare
        self._txn: TransactionalProducer | None = None
        self._start = start
        self._offsets = offsets
        self._timeout = settings.connect_timeout
        self.listener = listener
        self.member_id = member_id or f"tidings-{uuid.uuid4().hex[:12]}"
        self._instance = self.member_id
        self._owned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._closed = False
        self._pending_assign: list[TopicPartition] = []
        self._watch: TopicWatch | None = None
        self._read: set[str] = set()
        """Topics this member has been assigned partitions of."""
        if topic_ids is not None and group is not None:
            self._watch = TopicWatch(topic_ids, f"Kafka consumer {self.member_id} (group {group})")
        conf = settings.consumer_config(group or f"tidings.reader.{uuid.uuid4().hex}", start=start)
        conf.update(overrides or {})
        if member_id is not None or "client.id" not in conf:
            conf["client.id"] = self.member_id  # how `groups()` names the member
        if group is not None:
            # Static membership (KIP-345): after a broker outage longer than the session,
            # this member rejoins as itself at once, instead of as a new member that waits
            # for its old self's session to time out (10 s for delays, 45 s for groups).
            # `close` leaves explicitly, so others take its partitions at once.
            conf.setdefault("group.instance.id", self.member_id)
            self._instance = str(conf["group.instance.id"])
        conf.setdefault("error_cb", self._on_error)
        conf.setdefault("on_commit", self._on_commit)
        try:
            self._consumer = Consumer(conf)
        except (KafkaException, TypeError, ValueError) as exc:
            raise config_error(exc, settings, "consumer") from exc
        if group is None:
            owned = [
                TopicPartition(t, p) for t in sorted(set(topics)) for p in range(partitions[t])
            ]
            if start == "earliest" or offsets is None:
                origin = OFFSET_BEGINNING if start == "earliest" else OFFSET_END
                self._consumer.assign([KafkaTP(tp.topic, tp.partition, origin) for tp in owned])
            else:  # pinned now: OFFSET_END would resolve later and skip what comes between
                ends = offsets(owned, "latest")
                self._consumer.assign([KafkaTP(tp.topic, tp.partition, ends[tp]) for tp in owned])
            self._owned.update(owned)
            self._pending_assign = owned
        else:
            self._consumer.subscribe(
                list(topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )

    # -- callbacks (run inside poll/consume/close, on the caller's thread) ---------------

    def _on_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        QUIET.log(level, "Kafka consumer %s: %s", self.member_id, err.str())

    def _on_commit(self, err: KafkaError | None, partitions: list[KafkaTP]) -> None:
        if err is None or err.code() == KafkaError._NO_OFFSET:
            return
        if err.code() in GONE and self._watch is not None:
            for p in partitions:
                if p.error is None or p.error.code() in GONE:
                    self._watch.mark_gone(p.topic)
            return
        LOG.warning("Kafka consumer %s: commit failed: %s", self.member_id, err.str())

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        if self._watch is not None:
            self._watch.learn(p.topic for p in partitions)
            for topic in {p.topic for p in partitions} & self._watch.gone:
                self._watch.gone.discard(topic)
                LOG.warning("Kafka consumer %s: topic %s exists again.", self.member_id, topic)
        if self._offsets is not None:
            partitions = starting_points(
                consumer, partitions, group=self.group, start=self._start,
                offsets=self._offsets, watch=self._watch, read=self._read,
                timeout=self._timeout, member_id=self.member_id,
            )  # fmt: skip
        consumer.incremental_assign(partitions)  # before the listener, so it may seek/pause
        self._read.update(p.topic for p in partitions)
        gained = sorted(TopicPartition(p.topic, p.partition) for p in partitions)
        self._owned.update(gained)
        if gained and self.listener is not None:
            self.listener.on_assigned(gained)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        lost = sorted(TopicPartition(p.topic, p.partition) for p in partitions)
        try:
            if lost and self.listener is not None:
                self.listener.on_revoked(lost)
        finally:
            self._owned.difference_update(lost)
            self._paused.difference_update(lost)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        if self._watch is not None and all(p.topic in self._watch.gone for p in partitions):
            self._on_revoke(consumer, partitions)  # their topic was deleted: said already
            return
        LOG.warning(
            "Kafka consumer %s lost %d partition(s) without a clean revoke (session timed out "
            "or max.poll.interval.ms exceeded); their uncommitted records will be redelivered.",
            self.member_id,
            len(partitions),
        )
        self._on_revoke(consumer, partitions)

    # -- the seam ------------------------------------------------------------------------

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        if self._closed:
            return []
        if self._pending_assign:
            gained, self._pending_assign = self._pending_assign, []
            if self.listener is not None:
                self.listener.on_assigned(gained)
        if self._watch is not None and self._watch.due():
            self._check_topics()
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        msgs = [first]
        if max_records > 1:
            msgs.extend(self._consumer.consume(max_records - 1, 0))
        return self._records(msgs)

    def _records(self, msgs: list[Message]) -> list[Record]:
        """Convert a fetched batch; errors are rare, so the common loop does not look at them.

        One pass builds every Record (as `to_record` does, inlined: it runs once per event);
        only a batch holding an error or a null header value takes a second look.
        """
        new = tuple.__new__
        now = time.time()
        odd = False
        out: list[Record] = []
        append = out.append
        for msg in msgs:
            if msg.error() is not None:
                odd = True
                continue
            kind, ms = msg.timestamp()
            raw = msg.headers()
            headers: Headers = ()
            if raw:
                headers = tuple(raw)  # type: ignore[arg-type]  # checked just below
                for _, value in headers:
                    if value.__class__ is not bytes:  # a null value from a foreign producer
                        headers = _headers(raw)
                        break
            append(
                new(
                    Record,
                    (
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        headers,
                        ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else now,
                    ),
                )
            )
        if odd:
            self._errors(msgs)
        return out

    def _errors(self, msgs: list[Message]) -> None:
        for msg in msgs:
            err = msg.error()
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.code() in GONE and self._watch is not None and msg.topic():
                self._watch.mark_gone(msg.topic() or "")
                continue
            if err.fatal():
                raise BrokerError(
                    f"Kafka consumer {self.member_id} failed fatally: {err.str()}. Restart the "
                    "worker; if it persists, check the broker log."
                )
            LOG.warning(
                "Kafka consumer %s: %s (topic %s partition %s)",
                self.member_id,
                err.str(),
                msg.topic(),
                msg.partition(),
            )

    def commit(self, offsets: Mapping[TopicPartition, int], *, sync: bool) -> None:
        if self.group is None or self._closed:
            return
        watch = self._watch
        mine = [
            KafkaTP(tp.topic, tp.partition, o)
            if watch is None
            else KafkaTP(tp.topic, tp.partition, o, metadata=watch.metadata(tp.topic))
            for tp, o in offsets.items()
            if tp in self._owned and (watch is None or tp.topic not in watch.gone)
        ]
        if not mine:
            return
        try:
            if sync:
                result = self._consumer.commit(offsets=mine, asynchronous=False)
                errors = [p for p in result or [] if p.error is not None]
                if self._watch is not None:
                    for p in [p for p in errors if p.error and p.error.code() in GONE]:
                        self._watch.mark_gone(p.topic)
                        errors.remove(p)
                if errors:
                    LOG.warning(
                        "Kafka consumer %s: commit refused for %s",
                        self.member_id,
                        ", ".join(f"{p.topic}[{p.partition}]: {p.error}" for p in errors),
                    )
            else:
                self._consumer.commit(offsets=mine, asynchronous=True)
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.code() in GONE and self._watch is not None:
                for topic in {p.topic for p in mine}:
                    self._watch.mark_gone(topic)
                return
            if err is not None and err.code() in REBALANCING:
                LOG.warning(
                    "Kafka consumer %s: commit dropped (%s); the records will be redelivered "
                    "to the partitions' next owner.",
                    self.member_id,
                    err.str(),
                )
                return
            raise BrokerError(
                f"Kafka consumer {self.member_id} could not commit offsets for group "
                f"{self.group!r}: {describe(exc)}."
            ) from exc

    def commit_transaction(
        self, records: Sequence[OutgoingRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Produce `records` and commit `offsets` in one Kafka transaction (see the seam)."""
        if self.group is None or self._closed:
            raise TransactionAborted(
                f"Kafka consumer {self.member_id} is closed or not in a group; it commits nothing."
            )
        lost = [tp for tp in offsets if tp not in self._owned]
        if lost:
            raise TransactionAborted(
                f"Kafka consumer {self.member_id} no longer owns "
                + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in lost)
                + "; nothing of the transaction was written."
            )
        if self._txn is None:
            tid = transactional_id(self.group, self._instance)
            self._txn = TransactionalProducer(self._settings, tid, self._prepare or list)
        self._txn.commit(records, offsets, self._consumer)

    def _check_topics(self) -> None:
        """Restart the partitions of consumed topics that were recreated (see TopicWatch)."""
        assert self._watch is not None
        topics = {tp.topic for tp in self._owned}
        for topic in self._watch.check(topics):
            tps = sorted(tp for tp in self._owned if tp.topic == topic)
            if not tps:
                continue  # it is assigned afresh, where `_starting_points` applies
            LOG.warning(
                "group %s: topic %s was deleted and created again; reading %s from the "
                "earliest offset (the positions held were the old topic's).",
                self.group, topic, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps),
            )  # fmt: skip
            # To the runtime this is a revoke and a new assignment: it forgets what it
            # tracked for the old topic, and its commits for it are not ours to make.
            self._owned.difference_update(tps)
            try:
                if self.listener is not None:
                    self.listener.on_revoked(tps)
            finally:
                ktps = [KafkaTP(tp.topic, tp.partition) for tp in tps]
                self._consumer.resume(ktps)
                self._paused.difference_update(tps)
                self._owned.update(tps)
                for tp in tps:
                    self.seek(tp, OFFSET_BEGINNING)
            if self.listener is not None:
                self.listener.on_assigned(tps)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        mine = [tp for tp in partitions if tp in self._owned]
        if mine and not self._closed:
            self._consumer.pause([KafkaTP(tp.topic, tp.partition) for tp in mine])
            self._paused.update(mine)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        mine = [tp for tp in partitions if tp in self._owned]
        if mine and not self._closed:
            self._consumer.resume([KafkaTP(tp.topic, tp.partition) for tp in mine])
            self._paused.difference_update(mine)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self._owned or self._closed:
            return
        target = KafkaTP(partition.topic, partition.partition, offset)
        try:
            self._consumer.seek(target)
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is None or err.code() not in (KafkaError._STATE, KafkaError._UNKNOWN_PARTITION):
                raise BrokerError(f"Kafka consumer {self.member_id}: {describe(exc)}") from exc
            # Fetching has not started for a just-assigned partition: assign it again at the
            # offset instead (keeping it paused if it was).
            self._consumer.incremental_unassign([KafkaTP(partition.topic, partition.partition)])
            self._consumer.incremental_assign([target])
            if partition in self._paused:
                self._consumer.pause([KafkaTP(partition.topic, partition.partition)])

    def position(self, partition: TopicPartition) -> int | None:
        if partition not in self._owned or self._closed:
            return None
        try:
            (at,) = self._consumer.position([KafkaTP(partition.topic, partition.partition)])
        except KafkaException:
            return None
        return at.offset if at.offset >= 0 else None  # librdkafka: past control records

    def assignment(self) -> list[TopicPartition]:
        return sorted(self._owned)

    def _close_client(self) -> None:
        """Close the librdkafka consumer, waiting at most CLOSE_WAIT seconds for it."""
        failure: list[BaseException] = []

        def close() -> None:
            try:
                self._consumer.close()
            except BaseException as exc:  # raised again in the caller's thread
                failure.append(exc)

        closer = threading.Thread(target=close, name=f"tidings-close-{self.member_id}")
        closer.daemon = True
        closer.start()
        closer.join(CLOSE_WAIT)
        if closer.is_alive():
            LOG.warning(
                "Kafka consumer %s (group %s): the client did not close within %.0f s (a "
                "broker not answering?); leaving it behind. Offsets not committed are "
                "redelivered to the group.",
                self.member_id,
                self.group,
                CLOSE_WAIT,
            )
        elif failure:
            raise failure[0]

    def _leave(self) -> None:
        """Unsubscribe and wait (briefly) for the revocation, so the group is left now.

        A static member that only closes does not leave (KIP-345): its partitions would
        wait out its session. After an unsubscribe it leaves once its partitions are
        revoked, which the polls below run (through `_on_revoke`, on this thread).
        """
        try:
            self._consumer.unsubscribe()
            deadline = time.monotonic() + LEAVE_WAIT
            while self._consumer.assignment() and time.monotonic() < deadline:
                self._consumer.poll(0.05)  # records it returns are redelivered later
        except KafkaException as exc:
            LOG.debug("Kafka consumer %s: leaving the group: %s", self.member_id, exc)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.group is None and self._owned and self.listener is not None:
                self.listener.on_revoked(sorted(self._owned))
            if self.group is not None:
                self._leave()
            self._close_client()  # revokes through _on_revoke (if still needed)
        finally:
            self._closed = True
            self._owned.clear()
            self._paused.clear()
            if self._txn is not None:
                self._txn.close()
