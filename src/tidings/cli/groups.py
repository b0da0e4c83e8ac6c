"""`tidings groups list / describe G / reset G`."""

from __future__ import annotations

import difflib
import sys
import time
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
    """Show a group's status and, per partition, committed and end offsets, lag in events
    and seconds, status and owner.

    The status (ok, lagging, stalled, stopped) is judged by the group's running workers over
    a window of samples and read from their status reports; with none running it is not
    known ("-"), and lag in seconds is read from the broker.
    """
    with connect(broker, read_only=True) as backend:
        info = require_group(backend, group)
        view = describe(backend, info)
    if as_json:
        render.emit_json(view)
        return
    seconds = view["lag_seconds"]
    render.table(
        ["topic", "partition", "committed", "end", "lag", "lag s", "status", "member"],
        (
            (
                p["topic"], p["partition"], p["committed"], p["end"], p["lag"],
                _secs(p["lag_seconds"]), p["status"] or "-", p["member"],
            )
            for p in view["partitions"]
        ),
        title=(
            f"{info.group}: {view['status'] or 'status unknown (no running worker reports)'}"
            f", {info.state}, {len(info.members)} member(s), lag {info.lag:,}"
            f" ({_secs(seconds)} s)"
        ),
    )  # fmt: skip


def describe(backend: Backend, info: GroupInfo) -> dict[str, Any]:
    """`group_json(info)` with lag in seconds and the status its workers report."""
    # Imported here: the runtime is heavy, and `tidings --help` must stay quick.
    from tidings.instrumentation.lag import head_timestamps, lag_seconds
    from tidings.records import TopicPartition
    from tidings.runtime.status import read_snapshots

    out = group_json(info)
    reported = reported_lag(read_snapshots(backend), info.group)
    stamps: dict[TopicPartition, float] = {}
    if reported is None:
        wanted = {
            TopicPartition(p.topic, p.partition): p.committed or 0
            for p in info.partitions
            if p.lag > 0
        }
        stamps = head_timestamps(backend, wanted)
    now = time.time()
    for p, row in zip(info.partitions, out["partitions"], strict=True):
        if reported is not None:
            where = (p.topic, p.partition)
            row["lag_seconds"], row["status"] = reported[1].get(where, (None, None))
            continue
        stamp = stamps.get(TopicPartition(p.topic, p.partition))
        known = stamp is not None or p.lag <= 0
        row["lag_seconds"] = (
            round(lag_seconds(p.committed or 0, p.end, stamp, now), 3) if known else None
        )
        row["status"] = None
    ages = [row["lag_seconds"] for row in out["partitions"] if row["lag"] > 0]
    out["lag_seconds"] = None if None in ages else max(ages, default=0.0)
    out["status"] = reported[0] if reported is not None else None
    return out


def reported_lag(
    snapshots: list[dict[str, Any]], group: str
) -> tuple[str, dict[tuple[str, int], tuple[float | None, str]]] | None:
    """The newest status and per-partition (lag seconds, status) a live worker of `group`
    reported, or None when none did."""
    newest: dict[str, Any] | None = None
    for snap in snapshots:
        for g in snap.get("groups", ()):
            if g.get("group") != group or "status" not in g:
                continue
            if newest is None or snap.get("time", 0) >= newest["time"]:
                newest = {"time": snap.get("time", 0), **g}
    if newest is None:
        return None
    parts = {(t, p): (secs, status) for t, p, _lag, secs, status in newest.get("partitions", ())}
    return str(newest["status"]), parts


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:,.1f}"


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
