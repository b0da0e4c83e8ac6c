"""`tidings groups list / describe G / reset G`."""

from __future__ import annotations

import difflib
import sys
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
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply the plan without asking.")
    ] = False,
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a group's committed offsets. Stop the group's workers first.

    Shows the plan first (per partition: from, to, and how many events that skips or
    replays) and changes nothing unless --yes is given or you confirm at the terminal.
    """
    target: str | float = to if to in ("earliest", "latest") else parse_when(to)
    label = to if isinstance(target, str) else f"{to} ({render.when(target)})"
    with connect(broker) as backend:
        names = reset_topics(backend, group, topic)
        before = {
            (p.topic, p.partition): p.committed
            for g in backend.groups()
            if g.group == group
            for p in g.partitions
        }
        planned = {n: backend.reset_group(group, n, target, dry_run=True) for n in names}
        rows = sorted(
            (tp.topic, tp.partition, before.get(tp), off)
            for moves in planned.values()
            for tp, off in moves.items()
        )
        if not as_json:
            show_plan(group, label, rows)
        apply = yes or (not as_json and sys.stdin.isatty() and typer.confirm("Apply this plan?"))
        if apply:
            for name in names:
                backend.reset_group(group, name, target)
    if as_json:
        render.emit_json(
            {
                "group": group,
                "to": to,
                "applied": apply,
                "partitions": [
                    {"topic": t, "partition": p, "before": b, "after": a, **change(b, a)}
                    for t, p, b, a in rows
                ],
            }
        )
        return
    if apply:
        render.done(f"Reset {group} to {label} on {len(rows)} partition(s).")
    else:
        render.warn("Nothing changed: rerun with --yes to apply this plan.")


def reset_topics(backend: Backend, group: str, topic: list[str] | None) -> list[str]:
    """Return the topics to reset: those named, else those the group has offsets on."""
    if topic:
        names = list(dict.fromkeys(topic))
        for name in names:
            require(backend, name)
        return names
    info = require_group(backend, group)
    names = list(dict.fromkeys(p.topic for p in info.partitions if p.committed is not None))
    if not names:
        render.error(
            f"Group {group!r} has no committed offsets yet; name the topic with --topic T."
        )
        raise typer.Exit(1)
    return names


def change(before: int | None, after: int) -> dict[str, int | None]:
    """How many events moving from `before` to `after` skips or replays (None: unknown)."""
    if before is None:
        return {"skipped": None, "replayed": None}
    return {"skipped": max(0, after - before), "replayed": max(0, before - after)}


def show_plan(group: str, label: str, rows: list[tuple[str, int, int | None, int]]) -> None:
    render.table(
        ["topic", "partition", "from", "to", "effect"],
        ((t, p, b, a, effect(b, a)) for t, p, b, a in rows),
        title=f"Plan: reset {group} to {label}",
    )


def effect(before: int | None, after: int) -> str:
    moved = change(before, after)
    if moved["skipped"]:
        return f"skips {moved['skipped']:,} event(s)"
    if moved["replayed"]:
        return f"replays {moved['replayed']:,} event(s)"
    return "no change" if before is not None else "first position"


def require_group(backend: Backend, group: str) -> GroupInfo:
    infos = backend.groups()
    info = next((g for g in infos if g.group == group), None)
    if info is None:
        unknown_group(backend, group, [g.group for g in infos])
    return info


def unknown_group(backend: Backend, group: str, known: list[str], *, what: str = "") -> NoReturn:
    """Exit 1 naming the unknown group, a close match and the `known` groups (`what` they are)."""
    close = difflib.get_close_matches(group, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none yet"
    kind = f" {what}" if what else ""
    render.error(
        f"No consumer group {group!r}{kind} on {backend.url}.{hint} Groups{kind}: {listed}."
    )
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
