"""Publishing: Event -> CloudEvents record -> backend, with size limits and delays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from tidings.backends.base import Backend
from tidings.clock import Clock
from tidings.events import Event
from tidings.exceptions import ConfigurationError, EventTooLarge
from tidings.records import Headers, OutgoingRecord, TopicSpec
from tidings.wire import encode_with, format_time

TopicRef: TypeAlias = TopicSpec | str
Item: TypeAlias = Event | tuple[str | None, Event]

H_DUE = "tidings-deliver-at"
DEFAULT_MAX_EVENT_BYTES = 1_000_000
_BASE_HEADER_BYTES = 200  # the six CloudEvents headers, names and values


@dataclass(frozen=True, slots=True)
class Published:
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
    ) -> None:
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
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> tuple[OutgoingRecord, str]:
        """Encode one event into an outgoing record (no I/O); return it and its event id."""
        now = self.clock.time()
        return self._build(
            topic_name(topic),
            event,
            key,
            headers,
            self._due(now, delay, at),
            event_id,
            format_time(now).encode(),
        )

    def _build(
        self,
        name: str,
        event: Event,
        key: str | None,
        headers: dict[str, str] | None,
        deliver_at: float | None,
        event_id: str | None,
        stamp: bytes,
    ) -> tuple[OutgoingRecord, str]:
        if not isinstance(event, Event):
            raise ConfigurationError(
                f"publish() takes an Event instance, got {type(event).__name__}. Define "
                "`class MyEvent(tidings.Event): ...` and publish MyEvent(...)."
            )
        extra: Headers = ()
        if headers:
            extra = tuple((k, v.encode()) for k, v in headers.items())
        if deliver_at is not None:
            extra += ((H_DUE, repr(deliver_at).encode()),)
        value, hdrs, eid = encode_with(event, self._source, stamp, event_id, extra)
        kb = key.encode() if key is not None else None
        # Headers are small and bounded except user ones; count them only when they matter.
        size = len(value) + (len(kb) if kb else 0) + _BASE_HEADER_BYTES
        if extra or size > self.max_event_bytes:
            size += sum(len(k) + len(v) for k, v in extra)
        if size > self.max_event_bytes:
            raise EventTooLarge(
                f"Event {eid} ({event.event_type}) is {size:,} bytes; limit "
                f"max_event_bytes={self.max_event_bytes:,} (topic {name!r}). Raise the limit "
                "with App(..., max_event_bytes=N) (and the broker's message.max.bytes) or "
                "store the payload elsewhere and publish a reference."
            )
        return OutgoingRecord(name, kb, value, hdrs, None, deliver_at), eid

    @staticmethod
    def _due(now: float, delay: timedelta | None, at: datetime | None) -> float | None:
        if delay is not None and at is not None:
            raise ConfigurationError("Pass either delay= or at=, not both.")
        if delay is not None:
            if not isinstance(delay, timedelta):
                raise ConfigurationError(
                    f"delay= takes a datetime.timedelta, got {type(delay).__name__}."
                )
            return now + delay.total_seconds() if delay.total_seconds() > 0 else None
        if at is not None:
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
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        record, eid = self.build(topic, event, key=key, headers=headers, delay=delay, at=at)
        (meta,) = self._backend().produce([record])
        return Published(eid, meta.topic, meta.partition, meta.offset, record.deliver_at)

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        record, eid = self.build(topic, event, key=key, headers=headers, delay=delay, at=at)
        (meta,) = await asyncio.to_thread(self._backend().produce, [record])
        return Published(eid, meta.topic, meta.partition, meta.offset, record.deliver_at)

    def publish_many(
        self,
        topic: TopicRef,
        items: Iterable[Item],
        *,
        delay: timedelta | None = None,
    ) -> list[Published]:
        name = topic_name(topic)
        now = self.clock.time()
        deliver_at = self._due(now, delay, None)
        stamp = format_time(now).encode()
        build = self._build
        records: list[OutgoingRecord] = []
        ids: list[str] = []
        for item in items:
            key, event = item if isinstance(item, tuple) else (None, item)
            record, eid = build(name, event, key, None, deliver_at, None, stamp)
            records.append(record)
            ids.append(eid)
        metas = self._backend().produce(records)
        return [
            Published(eid, m.topic, m.partition, m.offset, r.deliver_at)
            for eid, m, r in zip(ids, metas, records, strict=True)
        ]
