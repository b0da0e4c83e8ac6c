"""The Context handed to handlers: where the event came from, and a way to follow up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from tidings.records import Headers
from tidings.wire import H_CAUSATION, H_CORRELATION

if TYPE_CHECKING:
    from tidings.events import Event
    from tidings.publisher import Published, TopicRef


class _Publisher(Protocol):
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
    ) -> Published: ...

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
    ) -> Published: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler knows about the event it handles.

    `attempt` is 1 on first delivery and grows with each retry. `ctx.publish(...)` publishes
    a follow-up event that carries this event's correlation id and names this event as its
    cause (headers ``tidings-correlation-id`` and ``tidings-causation-id``).
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    event_id: str
    event_type: str
    timestamp: float
    attempt: int
    group: str
    _publisher: _Publisher | None = field(default=None, repr=False, compare=False)

    @property
    def correlation_id(self) -> str:
        return self.headers.get(H_CORRELATION) or self.event_id

    def _follow_up_headers(self) -> Headers:
        return (
            (H_CORRELATION, self.correlation_id.encode()),
            (H_CAUSATION, self.event_id.encode()),
        )

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        """Publish a follow-up event (see `App.publish`); returns when it is durable."""
        return self._require().publish(
            topic,
            event,
            key=key,
            headers=headers,
            delay=delay,
            at=at,
            internal=self._follow_up_headers(),
        )

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        """Awaitable twin of `publish` for async handlers."""
        return await self._require().publish_async(
            topic,
            event,
            key=key,
            headers=headers,
            delay=delay,
            at=at,
            internal=self._follow_up_headers(),
        )

    def _require(self) -> _Publisher:
        if self._publisher is None:
            raise RuntimeError("This Context has no publisher (it was built outside a consumer).")
        return self._publisher


def context_headers(headers: Headers) -> dict[str, str]:
    """Return record headers as text for `Context.headers` (binary values are replaced)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers}
