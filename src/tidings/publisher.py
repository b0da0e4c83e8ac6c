"""Publishing: Event -> CloudEvents record -> backend, with size limits and delays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from pydantic_core import PydanticSerializationError

from tidings.backends.base import Backend
from tidings.clock import Clock
from tidings.events import Event
from tidings.exceptions import ConfigurationError, EncodeError, EventTooLarge
from tidings.gc_pause import gc_paused
from tidings.instrumentation import tracing
from tidings.instrumentation.catalogue import DelayScheduled, EventPublished
from tidings.instrumentation.dispatch import Listeners
from tidings.records import Headers, OutgoingRecord, TopicSpec
from tidings.wire import (
    H_DATASCHEMA,
    H_ID,
    H_SOURCE,
    H_SPEC,
    H_TIME,
    H_TYPE,
    JSON_HEADER,
    SPECVERSION,
    format_time,
    is_reserved_header,
    new_event_ids,
    schema_uri,
)

if TYPE_CHECKING:
    from tidings.staging import StagingPublisher

TopicRef: TypeAlias = TopicSpec | str
Key: TypeAlias = str | bytes | None
Item: TypeAlias = Event | tuple[Key, Event]

H_DUE = "tidings-deliver-at"
DEFAULT_MAX_EVENT_BYTES = 1_000_000
STREAM_CHUNK = 1000
"""publish_many encodes and hands events to the backend this many at a time: Kafka stores
the first ones while the rest are still being encoded."""
_BASE_HEADER_BYTES = 200  # the six CloudEvents headers, names and values


class Published(NamedTuple):
    """Where an event was stored. `offset` is -1 for a delayed event until it is due."""

    event_id: str
    topic: str
    partition: int
    offset: int
    deliver_at: float | None = None


def topic_name(topic: TopicRef) -> str:
    return topic if isinstance(topic, str) else topic.name


class Publisher:
    """Encodes events and hands them to the backend; thread-safe.

    Every call returns only when the backend reports the events durable, and raises a
    PublishError (never drops silently) when it does not.
    """

    def __init__(
        self,
        source: str,
        backend: Callable[[], Backend],
        clock: Clock,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        listeners: Listeners | None = None,
    ) -> None:
        self.listeners = listeners or Listeners()
        self.source = source
        self._source = source.encode()
        self._backend = backend
        self.clock = clock
        self.max_event_bytes = max_event_bytes

    def build(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: Key = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        internal: Headers = (),
    ) -> tuple[OutgoingRecord, str]:
        """Encode one event into an outgoing record (no I/O); return it and its event id.

        `headers` are the user's (reserved names are refused); `internal` are tidings' own
        (e.g. correlation ids), added as they are.

        Raises:
            ConfigurationError: a reserved or non-text header, a key that is not str or
                bytes, a negative delay, or something that is not an Event.
            EncodeError: the event cannot be encoded as JSON.
            EventTooLarge: the encoded event exceeds `max_event_bytes`.
        """
        now = self.clock.time()
        extra = user_headers(headers) + internal if headers else internal
        records, ids = self._encode(
            topic_name(topic), [(key, event)], self._due(now, delay, at), now, extra
        )
        return records[0], ids[0]

    def staging(self, sink: list[OutgoingRecord]) -> StagingPublisher:
        """Return a publisher that encodes into `sink` instead of producing (exactly once)."""
        from tidings.staging import StagingPublisher

        return StagingPublisher(self, sink)

    def _encode(
        self,
        name: str,
        items: Sequence[Item],
        deliver_at: float | None,
        now: float,
        extra: Headers = (),
    ) -> tuple[list[OutgoingRecord], list[str]]:
        """Encode `items` for topic `name`: the one loop every publish goes through.

        Everything shared by the batch (source, time, the due-time header, each class's
        type header and serializer) is built once; per event there is one `to_json`, one
        id and one record.
        """
        if deliver_at is not None:
            extra += ((H_DUE, repr(deliver_at).encode()),)
        source = (H_SOURCE, self._source)
        stamp = (H_TIME, format_time(now).encode())
        limit = self.max_event_bytes - _BASE_HEADER_BYTES - sum(len(k) + len(v) for k, v in extra)
        kinds: dict[type[Event], tuple[tuple[str, bytes], Headers, Callable[[Event], bytes]]] = {}
        ids = new_event_ids(len(items))
        records: list[OutgoingRecord] = []
        append = records.append
        for item, eid in zip(items, ids, strict=True):
            key, event = item if isinstance(item, tuple) else (None, item)
            kind = kinds.get(type(event))
            if kind is None:
                kind = kinds[type(event)] = _kind(event, extra)
            kind_header, tail, to_json = kind
            try:
                value = to_json(event)
            except PydanticSerializationError as exc:
                raise _unencodable(name, event, eid, exc) from exc
            # str first and inline: the common case on the hot path of publish_many
            kb = key.encode() if type(key) is str else key_bytes(key) if key is not None else None
            if len(value) + (len(kb) if kb else 0) > limit:
                raise self._too_large(name, event, eid, value, kb, extra)
            headers = (
                (H_SPEC, SPECVERSION),
                (H_ID, eid.encode()),
                source,
                kind_header,
                stamp,
                JSON_HEADER,
                *tail,  # ce_dataschema (versions above 1), then the extra headers
            )
            append(OutgoingRecord(name, kb, value, headers, None, deliver_at))
        return records, ids

    def _too_large(
        self, name: str, event: Event, eid: str, value: bytes, key: bytes | None, extra: Headers
    ) -> EventTooLarge:
        size = len(value) + len(key or b"") + _BASE_HEADER_BYTES
        size += sum(len(k) + len(v) for k, v in extra)
        return EventTooLarge(
            f"Event {eid} ({event.event_type}) is {size:,} bytes; limit "
            f"max_event_bytes={self.max_event_bytes:,} (topic {name!r}). Raise the limit "
            "with App(..., max_event_bytes=N) (and the broker's message.max.bytes) or "
            "store the payload elsewhere and publish a reference."
        )

    @staticmethod
    def _due(now: float, delay: timedelta | None, at: datetime | None) -> float | None:
        """Return the due time, or None to deliver now (no delay, zero, or `at` passed)."""
        if delay is not None and at is not None:
            raise ConfigurationError("Pass either delay= or at=, not both.")
        if delay is not None:
            if not isinstance(delay, timedelta):
                raise ConfigurationError(
                    f"delay= takes a datetime.timedelta, got {type(delay).__name__}."
                )
            if delay < timedelta(0):
                raise ConfigurationError(
                    f"delay= must not be negative (got -{-delay}); pass a positive timedelta, "
                    "or no delay to deliver now."
                )
            return now + delay.total_seconds() if delay else None
        if at is not None:
            if not isinstance(at, datetime):
                raise ConfigurationError(
                    f"at= takes a timezone-aware datetime, got {type(at).__name__}."
                )
            if at.tzinfo is None:
                raise ConfigurationError(
                    "at= needs a timezone-aware datetime (e.g. datetime.now(UTC) + ...)."
                )
            due = at.timestamp()
            return due if due > now else None
        return None

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: Key = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        internal: Headers = (),
    ) -> Published:
        tr = tracing.tracer()
        if tr is not None:
            with tracing.producer_span(tr, topic_name(topic)) as (span, trace_headers):
                done = self._publish(
                    topic, event, key, headers, delay, at, internal + trace_headers
                )
                tracing.sent(span, done.event_id, done.partition, done.offset)
                return done
        return self._publish(topic, event, key, headers, delay, at, internal)

    def _publish(
        self,
        topic: TopicRef,
        event: Event,
        key: Key,
        headers: Mapping[str, str] | None,
        delay: timedelta | None,
        at: datetime | None,
        internal: Headers,
    ) -> Published:
        record, eid = self.build(
            topic, event, key=key, headers=headers, delay=delay, at=at, internal=internal
        )
        t0 = time.perf_counter() if self.listeners.active else 0.0
        (meta,) = self._backend().produce([record])
        if t0:
            self._published(meta.topic, 1, t0, record.deliver_at)
        return Published(eid, meta.topic, meta.partition, meta.offset, record.deliver_at)

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: Key = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        internal: Headers = (),
    ) -> Published:
        tr = tracing.tracer()
        if tr is not None:
            with tracing.producer_span(tr, topic_name(topic)) as (span, trace_headers):
                done = await self._publish_async(
                    topic, event, key, headers, delay, at, internal + trace_headers
                )
                tracing.sent(span, done.event_id, done.partition, done.offset)
                return done
        return await self._publish_async(topic, event, key, headers, delay, at, internal)

    async def _publish_async(
        self,
        topic: TopicRef,
        event: Event,
        key: Key,
        headers: Mapping[str, str] | None,
        delay: timedelta | None,
        at: datetime | None,
        internal: Headers,
    ) -> Published:
        record, eid = self.build(
            topic, event, key=key, headers=headers, delay=delay, at=at, internal=internal
        )
        t0 = time.perf_counter() if self.listeners.active else 0.0
        (meta,) = await self._backend().produce_async([record])
        if t0:
            self._published(meta.topic, 1, t0, record.deliver_at)
        return Published(eid, meta.topic, meta.partition, meta.offset, record.deliver_at)

    def publish_many(
        self,
        topic: TopicRef,
        items: Iterable[Item],
        *,
        delay: timedelta | None = None,
    ) -> list[Published]:
        now = self.clock.time()
        deliver_at = self._due(now, delay, None)
        batch = items if isinstance(items, Sequence) else list(items)
        name = topic_name(topic)
        tr = tracing.tracer()
        if tr is not None and batch:
            with tracing.producer_span(tr, name, len(batch)) as (_, trace_headers):
                return self._publish_many(name, batch, now, deliver_at, trace_headers)
        return self._publish_many(name, batch, now, deliver_at, ())

    def _publish_many(
        self,
        name: str,
        batch: Sequence[Item],
        now: float,
        deliver_at: float | None,
        extra: Headers,
    ) -> list[Published]:
        ids: list[str] = []

        def chunks() -> Iterator[list[OutgoingRecord]]:
            for i in range(0, len(batch), STREAM_CHUNK):
                records, chunk_ids = self._encode(
                    name, batch[i : i + STREAM_CHUNK], deliver_at, now, extra
                )
                ids.extend(chunk_ids)
                yield records

        t0 = time.perf_counter() if self.listeners.active else 0.0
        with gc_paused(len(batch)):
            metas = self._backend().produce_stream(chunks())
            if t0 and metas:
                self._published(name, len(metas), t0, deliver_at)
            return [
                Published(eid, t, p, o, deliver_at)
                for eid, (t, p, o) in zip(ids, metas, strict=True)
            ]

    def _published(self, topic: str, count: int, t0: float, deliver_at: float | None) -> None:
        duration = time.perf_counter() - t0
        self.listeners.emit(EventPublished(topic, count, duration, deliver_at is not None))
        if deliver_at is not None:
            self.listeners.emit(DelayScheduled(topic, count, deliver_at))


def user_headers(headers: Mapping[str, str]) -> Headers:
    """Encode a user's headers, refusing names tidings writes itself and non-text values.

    Raises:
        ConfigurationError: a name is reserved (``ce_*``, ``content-type``, ``tidings-*``,
            in any case) or not a str, or a value is not a str.
    """
    out = []
    for name, value in headers.items():
        if not isinstance(name, str):
            raise ConfigurationError(
                f"Event header names must be str, got {type(name).__name__} ({name!r})."
            )
        if is_reserved_header(name):
            raise ConfigurationError(
                f"Event header {name!r} is reserved: tidings writes the CloudEvents headers "
                "(ce_*, content-type) and its own (tidings-*) itself, and consumers trust "
                f"them. Rename it (e.g. {'x-' + name!r})."
            )
        if not isinstance(value, str):
            raise ConfigurationError(
                f"Event header {name!r} has a value of type {type(value).__name__}; header "
                f"values are str (e.g. str({value!r:.40}))."
            )
        out.append((name, value.encode()))
    return tuple(out)


def key_bytes(key: object) -> bytes | None:
    """Return a partition key as bytes: str is UTF-8 encoded, bytes kept, None is no key.

    Raises:
        ConfigurationError: the key is of another type.
    """
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    raise ConfigurationError(
        f"An event key must be str or bytes, not {type(key).__name__} ({key!r:.50}). Pass "
        f"key=str(...) (keys choose the partition and order events per key)."
    )


def _unencodable(name: str, event: Event, eid: str, exc: Exception) -> EncodeError:
    return EncodeError(
        f"Event {eid} ({event.event_type}) could not be encoded as JSON for topic {name!r}: "
        f"{exc}. It was not sent. Make every field JSON-serializable and nest values less "
        "deeply, or store the payload elsewhere and publish a reference to it."
    )


def _kind(
    event: object, extra: Headers
) -> tuple[tuple[str, bytes], Headers, Callable[[Event], bytes]]:
    """The type header, the headers after the content type, and the serializer of
    `event`'s class (checked to be an Event)."""
    if not isinstance(event, Event):
        raise ConfigurationError(
            f"publish() takes an Event instance, got {type(event).__name__}. Define "
            "`class MyEvent(tidings.Event): ...` and publish MyEvent(...)."
        )
    schema = schema_uri(type(event))
    tail = extra if schema is None else ((H_DATASCHEMA, schema), *extra)
    return (H_TYPE, event.event_type.encode()), tail, event.__pydantic_serializer__.to_json
