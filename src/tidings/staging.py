"""`ctx.publish` under `exactly_once=True`: encode now, write with the offset commit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tidings.events import Event
from tidings.records import Headers, OutgoingRecord

if TYPE_CHECKING:
    from tidings.publisher import Published, Publisher, TopicRef


class StagingPublisher:
    """Encodes follow-up events into `sink` instead of producing them.

    The runtime writes a handled event's follow-ups in the same transaction as its offset
    commit, and only if the handler returned: an attempt that raised leaves nothing behind.
    So `publish` returns before anything is stored: `Published.offset` is -1 (and
    `partition` -1 unless the caller chose one); encoding errors are raised at once.
    """

    def __init__(self, publisher: Publisher, sink: list[OutgoingRecord]) -> None:
        self._publisher = publisher
        self._sink = sink

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        internal: Headers = (),
    ) -> Published:
        from tidings.publisher import Published

        record, eid = self._publisher.build(
            topic, event, key=key, headers=headers, delay=delay, at=at, internal=internal
        )
        self._sink.append(record)
        partition = -1 if record.partition is None else record.partition
        return Published(eid, record.topic, partition, -1, record.deliver_at)

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        internal: Headers = (),
    ) -> Published:
        return self.publish(
            topic, event, key=key, headers=headers, delay=delay, at=at, internal=internal
        )
