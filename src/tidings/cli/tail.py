"""`tidings tail TOPIC`: print events without joining any consumer group."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import typer
from rich.text import Text

from tidings.cli import render
from tidings.cli.options import BrokerOpt, connect
from tidings.cli.reader import follow, read_existing
from tidings.cli.topics import require
from tidings.records import Record, Start

DEFAULT_LAST = 10


def tail(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest stored event.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--count",
            min=0,
            metavar="N",
            show_default=False,
            help=f"Stop after N events. Without --follow or --from-beginning: the last N "
            f"events (default {DEFAULT_LAST}).",
        ),
    ] = None,
    keep_following: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new events until Ctrl-C (starts at the end)."
        ),
    ] = False,
    broker: BrokerOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per event (JSON lines).")
    ] = False,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="APP",
            help="Decode with APP's Event classes (module:attribute): values are shown as "
            "the current version, older ones upcast.",
        ),
    ] = None,
) -> None:
    """Print a topic's events (time, partition@offset, key, type, value) without a group.

    By default prints the last 10 events and exits. --from-beginning prints all of them
    from the oldest; --follow keeps printing new ones until Ctrl-C. Nothing is committed.
    With --app, each value is validated into the app's Event class (upcast from an older
    version); one that cannot be shows raw, its reason in the ``tidings-decode-error`` header.
    """
    with connect(broker, read_only=True) as backend:
        require(backend, topic)
        if keep_following:
            start: Start = "earliest" if from_beginning else "latest"
            records: Iterable[Record] = follow(backend, [topic], start=start)
            if not as_json:
                render.warn(f"Following {topic!r} on {backend.url} (Ctrl-C to stop)...")
        elif from_beginning:
            records = read_existing(backend, [topic])
        else:
            last = DEFAULT_LAST if count is None else count
            newest = sorted(
                read_existing(backend, [topic], last=last),
                key=lambda r: (r.timestamp, r.partition, r.offset),
            )
            records = newest[max(0, len(newest) - last) :] if last else []
        if app is not None:
            records = decoded(records, app)
        with contextlib.suppress(KeyboardInterrupt):
            printed = show(records, count, as_json)
            if not printed and not keep_following and not as_json:
                render.warn(f"No events in {topic!r}.")


def decoded(records: Iterable[Record], spec: str) -> Iterator[Record]:
    """Yield `records` with each value replaced by its event's JSON at the current version."""
    from tidings.cli.loader import load_app  # lazily: loading an app imports pydantic
    from tidings.exceptions import DecodeError
    from tidings.wire import decode_data, read_envelope

    load_app(spec)  # importing it registers its Event classes and upcasters
    try:
        for record in records:
            try:
                env, data = read_envelope(record)
                event = decode_data(record, env, data)
            except DecodeError as exc:
                note = (("tidings-decode-error", f"{exc.reason}: {exc}".encode()),)
                yield record._replace(headers=record.headers + note)
                continue
            yield record._replace(value=event.model_dump_json().encode())
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def show(records: Iterable[Record], count: int | None, as_json: bool) -> int:
    """Print records (stopping after `count`) and return how many were printed."""
    limited: Iterator[Record] = iter(records)
    if count is not None:
        limited = itertools.islice(limited, count)
    printed = 0
    console = render.stdout()
    try:
        for record in limited:
            if as_json:
                sys.stdout.write(json.dumps(record_json(record), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                console.print(line(record), soft_wrap=True)
            printed += 1
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    return printed


def line(record: Record) -> Text:
    from tidings.wire import H_TYPE, header_text  # lazily: wire loads pydantic

    key = render.text(record.key)
    return Text.assemble(
        (render.when(record.timestamp) or "", "dim"),
        "  ",
        (f"{record.topic}[{record.partition}]@{record.offset}", "cyan"),
        "  ",
        ("key=" + (key if key is not None else "-"), "magenta"),
        "  ",
        (header_text(record.headers, H_TYPE) or "-", "bold"),
        "  ",
        render.compact_json(record.value),
    )


def record_json(record: Record) -> dict[str, Any]:
    from tidings.wire import H_ID, H_TYPE, header_text, json_headers

    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": render.when(record.timestamp),
        "key": render.text(record.key),
        "id": header_text(record.headers, H_ID),
        "type": header_text(record.headers, H_TYPE),
        "headers": json_headers(record.headers),
        "value": render.json_value(record.value),
    }
