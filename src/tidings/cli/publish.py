"""`tidings publish TOPIC --type T JSON`: publish one event from the command line."""

from __future__ import annotations

import difflib
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tidings.backends.base import Backend
from tidings.cli import render
from tidings.cli.options import BrokerOpt, JsonOpt, connect, parse_duration
from tidings.cli.topics import require
from tidings.records import OutgoingRecord

if TYPE_CHECKING:
    from tidings.app import App
    from tidings.events import Event

SOURCE = "tidings-cli"


def publish(
    topic: Annotated[
        str, typer.Argument(metavar="TOPIC", help="Topic to publish to (it must exist).")
    ],
    data: Annotated[
        str,
        typer.Argument(
            metavar="JSON", help="The event's fields as a JSON object; '-' reads stdin."
        ),
    ],
    event_type: Annotated[
        str, typer.Option("--type", "-t", metavar="T", help="The event type (ce_type).")
    ],
    key: Annotated[
        str | None, typer.Option("--key", "-k", metavar="K", help="Partition key.")
    ] = None,
    delay: Annotated[
        timedelta | None,
        typer.Option(
            metavar="DURATION",
            parser=parse_duration,
            help="Deliver no earlier than this from now, e.g. 30s.",
        ),
    ] = None,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="APP",
            help="Load module:attribute first, so T is validated against its Event class.",
        ),
    ] = None,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish one event to TOPIC and print its id, partition and offset.

    With --app, a type with a known Event class is validated first; otherwise the JSON is
    sent as it is, with CloudEvents headers (source tidings-cli).
    """
    # Imported here, not at the top: pydantic and the runtime are slow to load.
    from pydantic import ValidationError

    from tidings.cli.loader import load_app
    from tidings.clock import SYSTEM_CLOCK
    from tidings.events import event_class
    from tidings.publisher import Publisher

    fields = parse_json(sys.stdin.read() if data == "-" else data)
    app = load_app(app_spec) if app_spec else None
    cls = event_class(event_type)
    if cls is None and app is not None:
        unknown_type(event_type, app, app_spec or "")
    if broker is None and app is not None:
        broker = app.broker
    with connect(broker) as backend:
        if app is not None and topic in app.topics:
            backend.ensure_topics([app.topics[topic]])
        require(backend, topic)
        if cls is not None:
            try:
                event = cls.model_validate(fields)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc']) or '(value)'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                render.error(f"Invalid {event_type} ({cls.__qualname__}): {problems}.")
                raise typer.Exit(1) from None
            publisher = Publisher(SOURCE, lambda: backend, SYSTEM_CLOCK)
            published = publisher.publish(topic, event, key=key, delay=delay)
            eid, partition, offset = published.event_id, published.partition, published.offset
            deliver_at = published.deliver_at
        else:
            now = SYSTEM_CLOCK.time()
            deliver_at = now + delay.total_seconds() if delay else None
            record, eid = raw_record(topic, event_type, fields, key, now, deliver_at)
            (meta,) = produce(backend, record)
            partition, offset = meta
    report(eid, event_type, topic, partition, offset, deliver_at, as_json, validated=cls)


def parse_json(text: str) -> dict[str, Any]:
    """Parse the event's fields, or exit with a message that shows how to quote them."""
    try:
        fields = json.loads(text)
    except ValueError as exc:
        render.error(
            f"JSON is invalid: {exc}. Quote it for the shell, e.g. "
            '\'{"account_id": "42"}\', or pass - and pipe it on stdin.'
        )
        raise typer.Exit(1) from None
    if not isinstance(fields, dict):
        render.error(
            f'JSON must be an object of the event\'s fields, e.g. \'{{"account_id": "42"}}\' '
            f"(got a {type(fields).__name__})."
        )
        raise typer.Exit(1)
    return fields


def unknown_type(event_type: str, app: App, app_spec: str) -> None:
    """Exit with an error naming the Event types known after loading the app."""
    from tidings.events import registered_types

    handled = {t for c in app.consumers for t in c.handler.type_names}
    known = sorted(handled | set(registered_types()))
    close = difflib.get_close_matches(event_type, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none (define Event subclasses in the app's module)"
    render.error(
        f"Unknown event type {event_type!r} for app {app.name!r} ({app_spec}): no Event class "
        f"has that type, so nothing would handle it.{hint} Known types: {listed}."
    )
    raise typer.Exit(1)


def raw_record(
    topic: str,
    event_type: str,
    fields: dict[str, Any],
    key: str | None,
    now: float,
    deliver_at: float | None,
) -> tuple[OutgoingRecord, str]:
    """Build a CloudEvents binary-mode record for unvalidated JSON, as the publisher does."""
    from tidings.publisher import H_DUE
    from tidings.wire import (
        CONTENT_TYPE,
        H_CONTENT_TYPE,
        H_ID,
        H_SOURCE,
        H_SPEC,
        H_TIME,
        H_TYPE,
        SPECVERSION,
        format_time,
        new_event_id,
    )

    eid = new_event_id()
    headers: list[tuple[str, bytes]] = [
        (H_SPEC, SPECVERSION),
        (H_ID, eid.encode()),
        (H_SOURCE, SOURCE.encode()),
        (H_TYPE, event_type.encode()),
        (H_TIME, format_time(now).encode()),
        (H_CONTENT_TYPE, CONTENT_TYPE),
    ]
    if deliver_at is not None:
        headers.append((H_DUE, repr(deliver_at).encode()))
    value = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    kb = key.encode() if key is not None else None
    return OutgoingRecord(topic, kb, value, tuple(headers), None, deliver_at), eid


def produce(backend: Backend, record: OutgoingRecord) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in backend.produce([record])]


def report(
    eid: str,
    event_type: str,
    topic: str,
    partition: int,
    offset: int,
    deliver_at: float | None,
    as_json: bool,
    *,
    validated: type[Event] | None,
) -> None:
    if validated is None:
        render.warn(
            f"The event was not validated: no Event class has type {event_type!r} here. "
            "Pass --app module:attribute to validate it against the app's Event classes."
        )
    if as_json:
        render.emit_json(
            {
                "event_id": eid,
                "type": event_type,
                "topic": topic,
                "partition": partition,
                "offset": offset if offset >= 0 else None,
                "deliver_at": render.when(deliver_at),
                "validated": validated is not None,
            }
        )
        return
    where = f"{topic}[{partition}]"
    if offset >= 0:
        render.done(f"Published {event_type} {eid} to {where}@{offset}")
    else:
        render.done(f"Scheduled {event_type} {eid} for {where}, due {render.due(deliver_at)}")
