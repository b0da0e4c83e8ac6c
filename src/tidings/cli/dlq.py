"""`tidings dlq list / replay`: inspect dead letters and replay them into their group."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from tidings.backends.base import Backend
from tidings.cli import render
from tidings.cli.groups import unknown_group
from tidings.cli.options import BrokerOpt, JsonOpt, connect
from tidings.cli.reader import BATCH, read_existing
from tidings.cli.topics import require
from tidings.records import Record, TopicPartition
from tidings.runtime import dead_letters as dl
from tidings.wire import H_ID, H_TYPE, header_text

dlq_app = typer.Typer(name="dlq", help="Inspect and replay dead letters.", no_args_is_help=True)
REPLAY_GROUP = "tidings-dlq-replay.{group}"
JOIN_LIMIT = 30.0
"""Seconds to wait for records while partitions are still unread (group join on Kafka)."""
GroupOpt = Annotated[str, typer.Option("--group", "-g", metavar="G", help="Consumer group.")]


@dlq_app.command("list")
def list_dead_letters(
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", metavar="G", help="Only this group's dead letters."),
    ] = None,
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, metavar="N", help="Show the last N.")
    ] = 20,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List dead-letter topics and their most recent dead letters (why each failed)."""
    with connect(broker, read_only=True) as backend:
        topics = dlq_topics(backend, group)
        records = sorted(
            read_existing(backend, list(topics), last=count),
            key=lambda r: (r.timestamp, r.topic, r.partition, r.offset),
        )[-count:]
        url = backend.url
    letters = [letter_json(r) for r in records]
    if as_json:
        render.emit_json({"topics": topics, "dead_letters": letters})
        return
    whose = f" for group {group!r}" if group else ""
    if not topics:
        render.warn(f"No dead letters{whose} on {url}.")
        return
    render.table(
        ["dead-letter topic", "dead letters"], sorted(topics.items()), title=f"Dead letters{whose}"
    )
    render.table(
        ["failed at", "group", "original", "type", "key", "reason", "error"],
        (
            (
                d["failed_at"],
                d["group"],
                d["original"],
                d["type"],
                d["key"],
                d["reason"],
                shorten(f"{d['error_type']}: {d['error_message']}", 160),
            )
            for d in letters
        ),
        title=f"Last {len(letters)} dead letter(s)",
    )


@dlq_app.command("replay")
def replay(
    group: GroupOpt,
    topic: Annotated[
        str | None,
        typer.Option(metavar="T", help="Only dead letters of events from this topic."),
    ] = None,
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            metavar="EVENT_ID",
            show_default=False,
            help="Replay only this event (repeatable); progress is not recorded.",
        ),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter, even ones replayed before.")
    ] = False,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-publish dead letters to their original topic, for group G only.

    Progress is kept in the consumer group tidings-dlq-replay.G, committed after each
    batch is stored, so running replay again only replays dead letters added since.
    """
    with connect(broker) as backend:
        if topic is not None:
            names = [require(backend, dl.dlq_topic(topic, group)).name]
        else:
            names = sorted(dlq_topics(backend, group))
        if not names:
            known = [g.group for g in backend.groups()]
            if group not in known:
                unknown_group(backend, group, known)
        if ids:
            replayed, missing = replay_ids(backend, names, group, set(ids))
        else:
            replayed, missing = replay_new(backend, names, group, from_start=replay_all), []
    if as_json:
        render.emit_json({"group": group, "replayed": replayed, "not_found": missing})
    elif not names:
        render.warn(f"Group {group!r} has no dead letters.")
    else:
        render.done(f"Replayed {replayed} dead letter(s) into group {group!r}.")
    if missing:
        render.error(f"No dead letter with id {', '.join(missing)} in {', '.join(names)}.")
        raise typer.Exit(1)


def replay_ids(
    backend: Backend, names: Sequence[str], group: str, ids: set[str]
) -> tuple[int, list[str]]:
    """Replay the dead letters whose event id is in `ids`; return the count and ids not found."""
    chosen = [r for r in read_existing(backend, names) if header_text(r.headers, H_ID) in ids]
    if chosen:
        backend.produce([dl.replay_record(r, group) for r in chosen])
    found = {header_text(r.headers, H_ID) for r in chosen}
    return len(chosen), sorted(ids - found)


def replay_new(backend: Backend, names: Sequence[str], group: str, *, from_start: bool) -> int:
    """Replay dead letters not replayed before (all with `from_start`); return how many."""
    if not names:
        return 0
    tracker = REPLAY_GROUP.format(group=group)
    if from_start:
        for name in names:
            backend.reset_group(tracker, name, "earliest")
    committed = {
        (p.topic, p.partition): p.committed
        for g in backend.groups()
        if g.group == tracker
        for p in g.partitions
    }
    end: dict[TopicPartition, int] = {}
    for info in backend.topics():
        if info.name in names:
            for p, (s, e) in enumerate(zip(info.start_offsets, info.end_offsets, strict=True)):
                tp = TopicPartition(info.name, p)
                if max(s, committed.get(tp) or 0) < e:
                    end[tp] = e
    if not end:
        return 0
    replayed = 0
    handle = backend.open_consumer(tracker, list(names), start="earliest", listener=None)
    try:
        quiet_since = time.monotonic()
        while end and time.monotonic() - quiet_since < JOIN_LIMIT:
            records = [r for r in handle.fetch(BATCH, 0.5) if r.offset < end.get(r.tp, -1)]
            if not records:
                continue
            quiet_since = time.monotonic()
            backend.produce([dl.replay_record(r, group) for r in records])
            offsets = {r.tp: r.offset + 1 for r in records}
            handle.commit(offsets, sync=True)
            replayed += len(records)
            for tp, next_offset in offsets.items():
                if next_offset >= end[tp]:
                    del end[tp]
        if end:
            render.warn(
                f"{len(end)} partition(s) of {', '.join(names)} were not read (is another "
                "`tidings dlq replay` running?); run replay again to finish."
            )
    finally:
        handle.close()
    return replayed


def dlq_topics(backend: Backend, group: str | None) -> dict[str, int]:
    """Return the dead-letter topics (of `group`, or all) with how many records each holds."""
    suffix = f".{group}.dlq" if group else ".dlq"
    return {
        t.name: sum(e - s for s, e in zip(t.start_offsets, t.end_offsets, strict=True))
        for t in backend.topics()
        if t.name.endswith(suffix) and len(t.name) > len(suffix)
    }


def letter_json(record: Record) -> dict[str, Any]:
    def h(name: str) -> str | None:
        return header_text(record.headers, name)

    return {
        "dlq_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "failed_at": h(dl.H_FAILED_AT) or render.when(record.timestamp),
        "group": h(dl.H_GROUP),
        "original": f"{h(dl.H_TOPIC)}[{h(dl.H_PARTITION)}]@{h(dl.H_OFFSET)}",
        "id": h(H_ID),
        "type": h(H_TYPE),
        "key": render.text(record.key),
        "reason": h(dl.H_REASON),
        "error_type": h(dl.H_ERROR_TYPE),
        "error_message": h(dl.H_ERROR_MESSAGE),
        "attempts": h(dl.H_ATTEMPTS),
        "traceback": h(dl.H_TRACEBACK),
        "value": render.json_value(record.value),
    }


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
