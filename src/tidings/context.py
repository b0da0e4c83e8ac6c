"""The Context handed to handlers: where the event came from, and a way to follow up."""

from __future__ import annotations

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
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published: ...

    async def publish_async(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
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

    def _follow_up_headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        out[H_CORRELATION] = self.correlation_id
        out[H_CAUSATION] = self.event_id
        return out

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
        """Publish a follow-up event (see `App.publish`); returns when it is durable."""
        return self._require().publish(
            topic, event, key=key, headers=self._follow_up_headers(headers), delay=delay, at=at
        )

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
        """Awaitable twin of `publish` for async handlers."""
        return await self._require().publish_async(
            topic, event, key=key, headers=self._follow_up_headers(headers), delay=delay, at=at
        )

    def _require(self) -> _Publisher:
        if self._publisher is None:
            raise RuntimeError("This Context has no publisher (it was built outside a consumer).")
        return self._publisher


def context_headers(headers: Headers) -> dict[str, str]:
    """Return record headers as text for `Context.headers` (binary values are replaced)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers}
