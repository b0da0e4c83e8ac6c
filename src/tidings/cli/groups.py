"""`tidings groups list / describe G / reset G`."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, NoReturn

import typer

from tidings.backends.base import Backend, GroupInfo
from tidings.cli import render
from tidings.cli.options import BrokerOpt, JsonOpt, connect, parse_when
from tidings.cli.topics import require

groups_app = typer.Typer(
    name="groups", help="Consumer groups: members, lag, offset resets.", no_args_is_help=True
)


@groups_app.command("list")
def list_groups(broker: BrokerOpt = None, as_json: JsonOpt = False) -> None:
    """List consumer groups with their state, members and total lag."""
    with connect(broker, read_only=True) as backend:
        infos = backend.groups()
        url = backend.url
    if as_json:
        render.emit_json([group_json(g) for g in infos])
        return
    if not infos:
        render.warn(f"No consumer groups on {url} yet; `tidings run APP` creates them.")
        return
    render.table(
        ["group", "state", "members", "lag"],
        ((g.group, g.state, len(g.members), g.lag) for g in infos),
        title=f"Consumer groups on {url}",
    )


@groups_app.command("describe")
def describe_group(
    group: Annotated[str, typer.Argument(metavar="G", help="Consumer group.")],
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a group's committed offset, end offset, lag and owner for each partition."""
    with connect(broker, read_only=True) as backend:
        info = require_group(backend, group)
    if as_json:
        render.emit_json(group_json(info))
        return
    render.table(
        ["topic", "partition", "committed", "end", "lag", "member"],
        ((p.topic, p.partition, p.committed, p.end, p.lag, p.member) for p in info.partitions),
        title=f"{info.group}: {info.state}, {len(info.members)} member(s), lag {info.lag:,}",
    )


@groups_app.command("reset")
def reset_group(
    group: Annotated[str, typer.Argument(metavar="G", help="Consumer group.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="earliest|latest|DATETIME",
            help="Where to move: earliest, latest, or the first event at/after an ISO "
            "datetime (e.g. 2024-05-01T12:00:00Z).",
        ),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            metavar="T",
            show_default=False,
            help="Topic to reset (repeatable). Default: every topic the group has offsets on.",
        ),
    ] = None,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a group's committed offsets. Stop the group's workers first."""
    target: str | float = to if to in ("earliest", "latest") else parse_when(to)
    with connect(broker) as backend:
        infos = {g.group: g for g in backend.groups()}
        before = infos.get(group)
        if topic:
            names = list(dict.fromkeys(topic))
            for name in names:
                require(backend, name)
        else:
            if before is None:
                unknown_group(backend, group, list(infos))
            names = list(
                dict.fromkeys(p.topic for p in before.partitions if p.committed is not None)
            )
            if not names:
                render.error(
                    f"Group {group!r} has no committed offsets yet; name the topic with --topic T."
                )
                raise typer.Exit(1)
        old = {(p.topic, p.partition): p.committed for p in (before.partitions if before else ())}
        rows: list[tuple[str, int, int | None, int]] = []
        for name in names:
            moved = backend.reset_group(group, name, target)
            rows.extend((tp.topic, tp.partition, old.get(tp), off) for tp, off in moved.items())
    rows.sort()
    if as_json:
        render.emit_json(
            [{"topic": t, "partition": p, "before": b, "after": a} for t, p, b, a in rows]
        )
        return
    label = to if isinstance(target, str) else f"{to} ({render.when(target)})"
    render.table(
        ["topic", "partition", "before", "after"], rows, title=f"{group}: reset to {label}"
    )


def require_group(backend: Backend, group: str) -> GroupInfo:
    infos = backend.groups()
    info = next((g for g in infos if g.group == group), None)
    if info is None:
        unknown_group(backend, group, [g.group for g in infos])
    return info


def unknown_group(backend: Backend, group: str, known: list[str]) -> NoReturn:
    close = difflib.get_close_matches(group, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none yet"
    render.error(f"No consumer group {group!r} on {backend.url}.{hint} Groups: {listed}.")
    raise typer.Exit(1)


def group_json(info: GroupInfo) -> dict[str, Any]:
    return {
        "group": info.group,
        "state": info.state,
        "members": list(info.members),
        "lag": info.lag,
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag": p.lag,
                "member": p.member,
            }
            for p in info.partitions
        ],
    }
