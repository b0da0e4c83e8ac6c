"""OpenTelemetry tracing (the optional extra ``tidings[otel]``); the only module that
imports opentelemetry.

Nothing happens unless the application configured a tracer provider
(``opentelemetry.trace.set_tracer_provider``) before publishing or running consumers:
`tracer()` then returns a tracer, `publish` starts a PRODUCER span and writes the W3C
``traceparent``/``tracestate`` headers (through the configured propagator), and each
handler call runs in a CONSUMER span, child of the producer's. A batch handler's span links
to every event's context instead. Attributes follow the messaging semantic conventions
(v1.30.0).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from tidings.records import Headers, Record

_cache: tuple[object, Any] | None = None
SYSTEM = "kafka"
CARRIED = ("traceparent", "tracestate", "baggage")


def tracer() -> Any | None:
    """The tidings tracer of the configured provider, or None (no provider: no tracing).

    Cheap when opentelemetry was never imported: one dictionary lookup.
    """
    global _cache
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    cached = _cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    from tidings import __version__

    made = provider.get_tracer("tidings", __version__)
    _cache = (provider, made)
    return made


@contextlib.contextmanager
def producer_span(tr: Any, topic: str, count: int = 1) -> Iterator[tuple[Any, Headers]]:
    """A PRODUCER span for publishing to `topic`; yields it and the headers to write."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": topic,
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with tr.start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield span, tuple((k, v.encode()) for k, v in carrier.items() if k in CARRIED)


def sent(span: Any, event_id: str, partition: int, offset: int) -> None:
    span.set_attribute("messaging.message.id", event_id)
    span.set_attribute("messaging.destination.partition.id", str(partition))
    if offset >= 0:
        span.set_attribute("messaging.kafka.offset", offset)


_api: tuple[Any, Any] | None = None


def _otel() -> tuple[Any, Any]:
    """`opentelemetry.propagate` and SpanKind.CONSUMER, imported once (only when tracing;
    an import statement per event costs about a microsecond)."""
    global _api
    if _api is None:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        _api = (propagate, SpanKind.CONSUMER)
    return _api


def _context(record: Record) -> Any:
    """The trace context the record's headers carry (None when they carry none)."""
    carrier = {}
    for name, value in record.headers:
        if name in CARRIED:
            try:
                carrier[name] = value.decode()
            except UnicodeDecodeError:
                continue
    if not carrier:  # published without tracing: no parent, and no propagator to run
        return None
    return _otel()[0].extract(carrier)


def _attributes(topic: str, group: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
    }


def consumer_span(tr: Any, record: Record, group: str, event_id: str | None) -> Any:
    """A CONSUMER span around one handler call, child of the record's producer span.

    Returns the tracer's own context manager (no generator of ours around it: this runs
    per event). An exception raised inside is recorded on the span and re-raised.
    """
    attributes = _attributes(record.topic, group)
    attributes["messaging.destination.partition.id"] = str(record.partition)
    attributes["messaging.kafka.offset"] = record.offset
    if event_id:
        attributes["messaging.message.id"] = event_id
    return tr.start_as_current_span(
        f"process {record.topic}",
        context=_context(record),
        kind=_otel()[1],
        attributes=attributes,
    )


@contextlib.contextmanager
def batch_span(tr: Any, records: Sequence[Record], topic: str, group: str) -> Iterator[Any]:
    """A CONSUMER span around a batch handler call, linked to each event's context."""
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    links = []
    for record in records:
        carried = _context(record)
        if carried is None:
            continue
        ctx = trace.get_current_span(carried).get_span_context()
        if ctx.is_valid:
            links.append(Link(ctx))
    attributes = _attributes(topic, group)
    attributes["messaging.batch.message_count"] = len(records)
    with tr.start_as_current_span(
        f"process {topic}", kind=SpanKind.CONSUMER, attributes=attributes, links=links
    ) as span:
        yield span
