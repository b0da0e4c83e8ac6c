"""`tidings dlq list / replay`: inspect dead letters and replay them into their group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from tidings.backends.base import Backend
from tidings.cli import render
from tidings.cli.groups import unknown_group
from tidings.cli.options import BrokerOpt, JsonOpt, connect

if TYPE_CHECKING:
    from tidings.cli.dlq_index import DeadEvent

dlq_app = typer.Typer(name="dlq", help="Inspect and replay dead letters.", no_args_is_help=True)
GroupOpt = Annotated[str, typer.Option("--group", "-g", metavar="G", help="Consumer group.")]


@dlq_app.command("list")
def list_dead_letters(
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", metavar="G", help="Only this group's dead letters."),
    ] = None,
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, metavar="N", help="Show the last N events.")
    ] = 20,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List dead-lettered events, one row per event id: why it failed and its replay status.

    Status: pending (never replayed), replayed, or failed-again (replayed, then
    dead-lettered again).
    """
    from tidings.cli import dlq_index  # imported here: it loads pydantic

    with connect(broker, read_only=True) as backend:
        topics = dlq_index.dlq_topics(backend, group)
        if group and not topics and group not in {g.group for g in backend.groups()}:
            no_dead_letters(backend, group)
        events = dlq_index.index(backend, topics)
        url = backend.url
    shown = events[-count:]
    per_topic = {t: [e for e in events if e.dlq_topic == t] for t in topics}
    if as_json:
        render.emit_json(
            {
                "topics": {t: len(es) for t, es in per_topic.items()},
                "dead_letters": [event_json(e) for e in shown],
            }
        )
        return
    whose = f" for group {group!r}" if group else ""
    if not topics:
        render.warn(f"No dead letters{whose} on {url}.")
        return
    render.table(
        ["dead-letter topic", "events", "pending", "replayed", "failed again"],
        (
            (t, len(es), *(sum(e.status is s for e in es) for s in dlq_index.Status))
            for t, es in per_topic.items()
        ),
        title=f"Dead letters{whose}",
    )
    render.table(
        ["failed at", "status", "event id", "group", "original", "type", "key", "error"],
        (
            (
                d["failed_at"],
                d["status"] + (f" ({d['dead_letters']}x)" if d["dead_letters"] > 1 else ""),
                d["id"],
                d["group"],
                d["original"],
                d["type"],
                d["key"],
                shorten(f"{d['reason']}: {d['error_type']}: {d['error_message']}", 160),
            )
            for d in (event_json(e) for e in shown)
        ),
        title=f"Last {len(shown)} of {len(events)} dead-lettered event(s)",
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
            help="Replay only this event (repeatable), whatever its status.",
        ),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Also replay events that were replayed before.")
    ] = False,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-publish dead-lettered events to their original topic, for group G only.

    Each event id is replayed once per run, from its newest dead letter: by default the
    events not replayed yet (pending or failed-again); with --all every one; with --id the
    events named. A replay marker in the dead-letter topic records what was replayed, so
    `tidings dlq list` shows it and the next replay skips it.
    """
    from tidings.cli import dlq_index  # imported here: it loads pydantic
    from tidings.cli.topics import require
    from tidings.runtime.dead_letters import dlq_topic

    with connect(broker) as backend:
        if topic is not None:
            names = [require(backend, dlq_topic(topic, group)).name]
        else:
            names = dlq_index.dlq_topics(backend, group)
        if not names:
            if ids:
                no_dead_letters(backend, group)
            known = [g.group for g in backend.groups()]
            if group not in known:
                unknown_group(backend, group, known)
        events = dlq_index.index(backend, names)
        if ids:
            wanted = list(dict.fromkeys(ids))
            by_id = {e.event_id: e for e in events}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                listed = ", ".join(e.event_id for e in events[-5:]) or "none"
                render.error(
                    f"No dead letter with event id {', '.join(missing)} in {', '.join(names)}; "
                    f"nothing was replayed. Recent ids: {listed}. See `tidings dlq list "
                    f"--group {group}`."
                )
                raise typer.Exit(1)
            chosen = [by_id[i] for i in wanted]
        elif replay_all:
            chosen = events
        else:
            chosen = [e for e in events if e.status is not dlq_index.Status.REPLAYED]
        replayed = dlq_index.replay(backend, chosen, group)
    if as_json:
        render.emit_json(
            {"group": group, "replayed": replayed, "ids": [e.event_id for e in chosen]}
        )
    elif not names:
        render.warn(f"Group {group!r} has no dead letters.")
    else:
        skipped = 0 if ids or replay_all else len(events) - replayed
        note = f"; {skipped} replayed before (--all replays them too)" if skipped else ""
        render.done(f"Replayed {replayed} dead-lettered event(s) into group {group!r}{note}.")


def no_dead_letters(backend: Backend, group: str) -> NoReturn:
    """Exit 1 saying `group` has no dead letters, listing the groups that have some."""
    from tidings.cli import dlq_index

    with_letters = dlq_index.dlq_groups(backend)
    if group in {g.group for g in backend.groups()}:
        listed = ", ".join(with_letters) if with_letters else "none"
        render.error(
            f"Group {group!r} has no dead letters on {backend.url}. "
            f"Groups with dead letters: {listed}."
        )
        raise typer.Exit(1)
    unknown_group(backend, group, with_letters, what="with dead letters")


def event_json(event: DeadEvent) -> dict[str, Any]:
    """Describe one dead-lettered event for `dlq list` (numbers are numbers)."""
    from tidings.runtime import dead_letters as dl

    d = event.newest
    replay = event.last_replay
    return {
        "id": d.event_id,
        "status": str(event.status),
        "dead_letters": len(event.letters),
        "dlq_topic": event.dlq_topic,
        "partition": d.record.partition,
        "offset": d.record.offset,
        "failed_at": d.failed_at or render.when(d.record.timestamp),
        "group": d.group,
        "original": f"{d.topic}[{d.partition}]@{d.offset}",
        "original_topic": d.topic,
        "original_partition": d.partition,
        "original_offset": d.offset,
        "type": d.event_type,
        "key": render.text(d.record.key),
        "reason": d.reason,
        "error_type": d.error_type,
        "error_message": d.error_message,
        "attempts": d.attempts,
        "traceback": d.traceback,
        "value": render.json_value(d.record.value),
        "replayed_at": render.text(replay.header(dl.H_REPLAYED_AT)) if replay else None,
        "replayed_to": render.text(replay.header(dl.H_REPLAYED_TO)) if replay else None,
    }


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
