"""Durable, thread-safe produce over one shared librdkafka producer.

`KafkaProducer.produce` hands every record to librdkafka, then serves delivery reports
until each record's report is in: it returns only when the broker acknowledged all of them
(`acks=all`, idempotent), and raises when any was refused or may not have been stored.
The hot loop does no per-record work beyond one `produce()` call and one `partial` (so a
report finds its record), which keeps bulk publishing close to raw librdkafka speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tidings.backends.kafka.admin import KafkaAdmin
from tidings.backends.kafka.config import KafkaSettings, config_error
from tidings.backends.kafka.errors import REPLICA_TROUBLE, delivery_failure, translate
from tidings.backends.kafka.logs import QUIET
from tidings.backends.kafka.replicas import diagnose
from tidings.exceptions import (
    BrokerError,
    ConfigurationError,
    DeliveryUncertain,
    PublishError,
    TopicNotFound,
)
from tidings.gc_pause import gc_paused
from tidings.records import OutgoingRecord, RecordMetadata

LOG = logging.getLogger("tidings.kafka")

FLUSH_SLICE = 0.002
"""Seconds per `flush` call while waiting for delivery reports."""


class _Batch:
    """Collects the delivery reports of one `produce` call (from whichever thread polls).

    Reports land in lists of ints rather than in tuples holding librdkafka's messages:
    100k live tuples and messages would cost more in garbage collection than everything
    else the batch does. The lists grow chunk by chunk as records are sent.
    """

    __slots__ = ("done", "errors", "expected", "offsets", "on_complete", "partitions")

    def __init__(self) -> None:
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.errors: list[tuple[int, KafkaError]] = []
        self.done: list[int] = []
        self.expected = -1
        """Reports to wait for, once every record is sent (-1 before)."""
        self.on_complete: Callable[[], None] | None = None
        """Called (from the polling thread) when the last expected report is in; maybe twice."""

    def grow(self, size: int) -> None:
        self.partitions += [0] * size
        self.offsets += [-1] * size

    def report(self, index: int, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.partitions[index] = msg.partition()  # type: ignore[assignment]
            self.offsets[index] = msg.offset()  # type: ignore[assignment]
        else:
            self.errors.append((index, err))
        self.done.append(index)  # list.append is atomic under the GIL; a counter is not
        if self.on_complete is not None and len(self.done) == self.expected:
            self.on_complete()

    def expect(self, sent: int) -> None:
        """Say how many reports will come; completes at once if they are all in already."""
        self.expected = sent
        if self.on_complete is not None and len(self.done) == sent:
            self.on_complete()


class KafkaProducer:
    """One idempotent librdkafka producer shared by every publishing thread."""

    def __init__(self, settings: KafkaSettings, admin: KafkaAdmin) -> None:
        self.settings = settings
        self.admin = admin
        conf = settings.producer_config()
        conf.setdefault("error_cb", self._on_error)
        try:
            self._producer = Producer(conf)
        except (KafkaException, TypeError, ValueError) as exc:
            raise config_error(exc, settings, "producer") from exc
        self._healthy = False
        """A broker answered since the producer started or last lost every broker."""
        self._poller: threading.Thread | None = None
        self._poller_pid = 0
        self._closing = threading.Event()
        self._async_lock = threading.Lock()
        self._async_pending = 0
        self._reports_wanted = threading.Event()
        max_queued = conf.get("queue.buffering.max.messages", 100_000)
        self._queue_room = int(max_queued) // 2  # type: ignore[call-overload]
        """Async publishes go through a thread once librdkafka's queue is this full."""

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._healthy = False
        level = logging.ERROR if err.fatal() else logging.WARNING
        QUIET.log(level, "Kafka producer: %s", err.str())

    def check(self, records: Sequence[OutgoingRecord]) -> None:
        """Raise what `produce` would before sending `records` (see `_prepare`)."""
        self._prepare(records)

    def _prepare(self, records: Sequence[OutgoingRecord]) -> None:
        """Fail fast: broker unreachable, missing topics, partitions out of range."""
        topics = {rec.topic for rec in records}
        explicit = [rec for rec in records if rec.partition is not None]
        if not self._healthy:
            timeout = self.settings.connect_timeout
            try:
                self._producer.list_topics(timeout=timeout)
            except KafkaException as exc:
                raise translate(exc, "fetch metadata", self.settings.servers, timeout) from exc
            self._healthy = True
        missing = [t for t in topics if t not in self.admin.known_topics]
        if missing:
            self.admin.metadata()  # created since we last looked?
            for topic in missing:
                if topic not in self.admin.known_topics:
                    raise TopicNotFound(topic, self.admin.url)
        for rec in explicit:
            assert rec.partition is not None
            count = self.admin.known_topics[rec.topic]
            if not 0 <= rec.partition < count:
                self.admin.metadata(rec.topic)  # partitions may have been added since
                count = self.admin.known_topics[rec.topic]
            if not 0 <= rec.partition < count:
                raise ConfigurationError(
                    f"Topic {rec.topic!r} has {count} partitions; partition {rec.partition} "
                    "does not exist."
                )

    def produce(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Store `records` and return where each went, in order (see `produce_stream`)."""
        return self.produce_stream((records,))

    def produce_stream(self, chunks: Iterable[Sequence[OutgoingRecord]]) -> list[RecordMetadata]:
        """Store the records of every chunk and return where each went, in order.

        Each chunk is handed to librdkafka as soon as it is taken from `chunks`, so the
        broker acknowledges early chunks while the caller is still building later ones;
        the call returns once every record is acknowledged. If taking a chunk raises, the
        records already sent are awaited first, then the error is raised with a note
        saying how many were stored.

        Raises:
            BrokerUnavailable: no broker answered within `connect_timeout` (nothing was sent).
            ConfigurationError: a record names a partition its topic does not have.
            EventTooLarge: librdkafka refused a record as too large (the others were sent).
            DeliveryUncertain: every failed record may have been stored (timeouts).
            PublishError: records were refused; the message counts them and says why.
        """
        records: list[OutgoingRecord] = []
        batch = _Batch()
        refused: dict[int, KafkaException] = {}
        sent = 0
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                self._prepare(chunk)
                batch.grow(len(chunk))
                with gc_paused(len(chunk)):
                    sent += self._send(chunk, batch, len(records), refused)
                records += chunk
        except Exception as exc:
            if sent:
                self._await(batch, sent)
                stored = sent - len(batch.errors)
                exc.add_note(f"{stored} records sent before this error were stored in Kafka.")
            raise
        self._await(batch, sent)
        with gc_paused(len(records)):
            return self._results(records, batch, refused)

    def _send(
        self,
        records: Sequence[OutgoingRecord],
        batch: _Batch,
        base: int,
        refused: dict[int, KafkaException],
    ) -> int:
        """Hand `records` (indexes from `base` on) to librdkafka; return how many it took."""
        report = batch.report
        produce = self._producer.produce
        sent = 0
        for i, rec in enumerate(records, base):
            headers: list[tuple[str, str | bytes | None]] | None = (
                list(rec.headers) if rec.headers else None
            )
            part = -1 if rec.partition is None else rec.partition
            while True:
                try:
                    # Positional arguments: keyword parsing would cost more than the call.
                    produce(
                        rec.topic, rec.value, rec.key, part, partial(report, i), None, 0, headers
                    )
                except BufferError:  # librdkafka's queue is full: let deliveries drain it
                    self._producer.poll(0.01)
                    continue
                except KafkaException as exc:
                    refused[i] = exc
                else:
                    sent += 1
                break
        return sent

    async def produce_async(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """`produce` for the event loop: hands records to librdkafka and awaits their reports.

        No thread waits per call: a delivery thread serves librdkafka's reports and
        completes the awaiting futures, so thousands of publishes can be in flight. When
        the first call would block (broker not reached yet, a topic to look up or create,
        explicit partitions to check), it runs in a worker thread instead.
        """
        if not records:
            return []
        if self._closing.is_set():
            raise PublishError(
                f"The Kafka producer for {self.settings.servers} is closed; nothing was sent. "
                "Publish before App.close() (or open a new App)."
            )
        if (
            not self._healthy
            or len(self._producer) + len(records) > self._queue_room
            or any(
                r.partition is not None or r.topic not in self.admin.known_topics for r in records
            )
        ):
            # Would block: first contact, topics to learn, or librdkafka's queue nearly full.
            return await asyncio.to_thread(self.produce, records)
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        unsettled = [True]
        """Popped by whichever settles the batch first (list.pop is atomic under the GIL)."""

        def settle() -> None:
            try:
                unsettled.pop()
            except IndexError:
                return
            self._async_done()

        def complete() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake() -> None:  # on the thread that served the last report; maybe twice
            settle()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(complete)

        batch = _Batch()
        batch.on_complete = wake
        batch.grow(len(records))
        refused: dict[int, KafkaException] = {}
        self._async_started()
        try:
            batch.expect(self._send(records, batch, 0, refused))
            await asyncio.wait_for(finished, self.settings.delivery_timeout + 5)
        except TimeoutError:
            raise DeliveryUncertain(
                f"{batch.expected - len(batch.done)} of {batch.expected} records got no "
                f"delivery report from Kafka at {self.settings.servers} within "
                f"{self.settings.delivery_timeout:g} s; they may or may not be stored. "
                "Check the broker, then publish them again (consumers may see duplicates)."
            ) from None
        finally:
            settle()
        if batch.errors:  # explaining a failure may ask the cluster: not on the loop
            return await asyncio.to_thread(self._results, records, batch, refused)
        return self._results(records, batch, refused)

    def _async_started(self) -> None:
        """Count an async batch in flight; start or wake the delivery thread."""
        with self._async_lock:
            self._async_pending += 1
            if self._poller is None or self._poller_pid != os.getpid():
                self._poller_pid = os.getpid()
                self._poller = threading.Thread(
                    target=self._serve_reports, name="tidings-kafka-delivery", daemon=True
                )
                self._poller.start()
            self._reports_wanted.set()

    def _async_done(self) -> None:
        with self._async_lock:
            self._async_pending -= 1
            if self._async_pending == 0:
                self._reports_wanted.clear()

    def _serve_reports(self) -> None:
        """While async batches are in flight, flush in short slices; otherwise sleep.

        `flush` rather than `poll`: while a thread is in it, librdkafka sends at once instead
        of waiting `linger.ms`, so an awaited publish is as quick as a synchronous one. The
        thread touches librdkafka only while async batches wait, so synchronous publishers
        alone never share the report queue with it.
        """
        while not self._closing.is_set():
            if not self._reports_wanted.wait(0.5):
                continue
            try:
                self._producer.flush(FLUSH_SLICE)  # waits with the GIL released
            except Exception:  # a callback raised: report it, keep serving the others
                LOG.exception("Kafka delivery report handling failed")

    def _await(self, batch: _Batch, sent: int) -> None:
        # flush() sends at once (ignoring linger.ms) and serves reports for every thread.
        deadline = time.monotonic() + self.settings.delivery_timeout + 5
        flush = self._producer.flush
        while len(batch.done) < sent:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeliveryUncertain(
                    f"{sent - len(batch.done)} of {sent} records got no delivery report "
                    f"from Kafka at {self.settings.servers} within "
                    f"{self.settings.delivery_timeout:g} s; they may or may not be stored. "
                    "Check the broker, then publish them again (consumers may see duplicates)."
                )
            # Short slices: when another thread serves our last report, librdkafka's flush
            # would otherwise keep waiting (up to 10 ms) for events that went elsewhere.
            flush(min(remaining, FLUSH_SLICE))

    def _results(
        self,
        records: Sequence[OutgoingRecord],
        batch: _Batch,
        refused: dict[int, KafkaException],
    ) -> list[RecordMetadata]:
        if not batch.errors and not refused:
            return list(
                map(RecordMetadata, (r.topic for r in records), batch.partitions, batch.offsets)
            )
        limit = self.settings.producer_config().get("message.max.bytes", 1_000_000)
        cause = ""
        if any(err.code() in REPLICA_TROUBLE for _, err in batch.errors):
            cause = diagnose(self.admin.client, {records[i].topic for i, _ in batch.errors})
        error = delivery_failure(records, refused, batch.errors, limit, cause)
        failed = set(refused) | {i for i, _ in batch.errors}
        gone = self._deleted({records[i].topic for i in failed})
        if gone:
            # Deleted under us: librdkafka holds its records until they time out. Say so
            # rather than "timed out"; the broker cannot have stored them.
            missing = TopicNotFound(gone[0], self.admin.url)
            missing.add_note(f"It existed when this producer first used it. {error}")
            raise missing from error
        raise error

    def _deleted(self, topics: set[str]) -> list[str]:
        """Return those of `topics` the broker no longer has (forgetting them)."""
        try:
            md = self.admin.metadata()
        except BrokerError:
            return []
        gone = sorted(t for t in topics if t not in md.topics or md.topics[t].error is not None)
        for topic in gone:
            self.admin.known_topics.pop(topic, None)
        return gone

    def close(self) -> None:
        """Deliver what is queued (bounded by `delivery_timeout`); log what could not be."""
        left = self._producer.flush(self.settings.delivery_timeout)
        self._closing.set()
        self._reports_wanted.set()
        if self._poller is not None and self._poller_pid == os.getpid():
            self._poller.join(1.0)
        if left:
            LOG.error(
                "Kafka producer closed with %d records undelivered to %s after %g s.",
                left,
                self.settings.servers,
                self.settings.delivery_timeout,
            )
