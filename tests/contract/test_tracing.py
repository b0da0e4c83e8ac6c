"""OpenTelemetry tracing on every backend: publish -> handler -> ctx.publish -> handler is one
trace; a batch span links to each event; no provider configured, no headers and no spans."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from tests.helpers import wait_until
from tidings import App, Batch, Context, Event


class TracedBanned(Event):
    account: str


class TracedNotified(Event):
    account: str


def _reset_global_provider() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # what OpenTelemetry's own tests do
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    yield exporter
    _reset_global_provider()
    provider.shutdown()


def test_one_trace_from_publish_through_each_group(
    broker_url: str, topic_name: str, spans: InMemorySpanExporter
) -> None:
    app = App("traced", broker=broker_url)
    bans = app.topic(topic_name)
    notes = app.topic(topic_name + "-notes")
    done = threading.Event()
    inside: list[str | None] = []

    @app.consumer(bans, group="notifier")
    async def notify(e: TracedBanned, ctx: Context) -> None:
        inside.append(ctx.headers.get("traceparent"))
        await ctx.publish_async(notes, TracedNotified(account=e.account))

    @app.consumer(notes, group="mailer")
    def mail(e: TracedNotified) -> None:  # a sync handler: its thread sees the span too
        done.set()

    tracer = trace.get_tracer("test")
    with app.running(), tracer.start_as_current_span("POST /accounts/42/ban") as request:
        app.publish(bans, TracedBanned(account="42"))
        wait_until(done.is_set, 30, "the mailer handled the notification")
    app.close()
    wait_until(lambda: len(spans.get_finished_spans()) >= 5, 10, "five spans")
    finished = spans.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in finished} == {trace_id}
    by_name = {(s.name, s.kind): s for s in finished}
    send_ban = by_name[(f"send {topic_name}", SpanKind.PRODUCER)]
    process_ban = by_name[(f"process {topic_name}", SpanKind.CONSUMER)]
    send_note = by_name[(f"send {topic_name}-notes", SpanKind.PRODUCER)]
    process_note = by_name[(f"process {topic_name}-notes", SpanKind.CONSUMER)]
    assert send_ban.parent.span_id == request.get_span_context().span_id
    assert process_ban.parent.span_id == send_ban.context.span_id
    assert send_note.parent.span_id == process_ban.context.span_id
    assert process_note.parent.span_id == send_note.context.span_id
    assert process_ban.attributes["messaging.system"] == "kafka"
    assert process_ban.attributes["messaging.consumer.group.name"] == "notifier"
    assert process_ban.attributes["messaging.destination.name"] == topic_name
    assert (
        process_ban.attributes["messaging.message.id"]
        == send_ban.attributes["messaging.message.id"]
    )
    assert inside and inside[0] and f"{send_ban.context.span_id:016x}" in inside[0]


def test_a_batch_span_links_to_each_event(
    broker_url: str, topic_name: str, spans: InMemorySpanExporter
) -> None:
    app = App("traced", broker=broker_url)
    topic = app.topic(topic_name)
    got: list[str] = []

    @app.consumer(topic, group="batcher", batch=Batch(max_size=10, max_wait=0.5))
    def handle(events: list[TracedBanned]) -> None:
        got.extend(e.account for e in events)

    for n in range(3):
        app.publish(topic, TracedBanned(account=str(n)))
    with app.running():
        wait_until(lambda: len(got) == 3, 30, "three handled")
    app.close()
    finished = spans.get_finished_spans()
    sends = [s for s in finished if s.kind == SpanKind.PRODUCER]
    batches = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert len(sends) == 3
    linked = {link.context.span_id for b in batches for link in b.links}
    assert linked == {s.context.span_id for s in sends}
    assert all(b.parent is None for b in batches)  # links, not a parent


def test_no_provider_no_spans_and_no_trace_headers(broker_url: str, topic_name: str) -> None:
    _reset_global_provider()
    app = App("untraced", broker=broker_url)
    topic = app.topic(topic_name)
    seen: list[dict[str, str]] = []

    @app.consumer(topic, group="g")
    def handle(e: TracedBanned, ctx: Context) -> None:
        seen.append(ctx.headers)

    app.publish(topic, TracedBanned(account="1"))
    with app.running():
        wait_until(lambda: len(seen) == 1, 30, "handled")
    app.close()
    assert "traceparent" not in seen[0]
