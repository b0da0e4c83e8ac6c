"""`tidings topics list / create / describe`."""

from __future__ import annotations

import difflib
from datetime import timedelta
from typing import Annotated, Any

import typer

from tidings.backends.base import Backend, TopicInfo
from tidings.cli import render
from tidings.cli.options import BrokerOpt, JsonOpt, connect, parse_duration

topics_app = typer.Typer(
    name="topics", help="List, create and describe topics.", no_args_is_help=True
)


INTERNAL_PREFIX = "tidings."
"""Topics tidings runs on (worker status snapshots, dashboard controls); `--all` lists them."""


@topics_app.command("list")
def list_topics(
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Also list tidings' own topics (tidings.status, tidings.control)."
        ),
    ] = False,
) -> None:
    """List topics: partitions, retention, events stored and delayed events pending."""
    with connect(broker, read_only=True) as backend:
        infos = [t for t in backend.topics() if show_all or not t.name.startswith(INTERNAL_PREFIX)]
        url = backend.url
    if as_json:
        render.emit_json([topic_json(t) for t in infos])
        return
    if not infos:
        render.warn(f"No topics on {url}. Create one with `tidings topics create NAME`.")
        return
    replicated = any(t.replicas for t in infos)  # Kafka: replication columns
    render.table(
        ["topic", "partitions", "retention", "events", "delayed", "next due"]
        + (["replicas", "under-replicated"] if replicated else []),
        (
            (
                t.name,
                t.partitions,
                render.retention(t.retention),
                stored(t),
                t.delayed_pending,
                render.due(t.next_due),
                *((replication(t), len(t.under_replicated) or None) if replicated else ()),
            )
            for t in infos
        ),
        title=f"Topics on {url}",
    )
    for t in infos:
        if t.under_replicated:
            render.warn(under_replicated_warning(t))


@topics_app.command("create")
def create_topic(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Topic name: letters, digits, '.', '_', '-'.")
    ],
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1, metavar="N")] = 1,
    retention: Annotated[
        timedelta | None,
        typer.Option(
            metavar="DURATION",
            parser=parse_duration,
            show_default=False,
            help="How long events are kept, with a unit: 45s, 30m, 12h or 7d "
            "(default: the broker's).",
        ),
    ] = None,
    replication: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            show_default=False,
            help="Kafka: copies of each partition (default: the broker's); ignored elsewhere.",
        ),
    ] = None,
    broker: BrokerOpt = None,
) -> None:
    """Create a topic. An existing topic with the same partition count is left as it is."""
    from tidings.app import App  # imported here: pydantic and the runtime are slow to load

    spec = App("tidings-cli").topic(
        name, partitions=partitions, retention=retention, replication=replication
    )
    with connect(broker) as backend:
        existing = find(backend, name)
        if existing is not None:
            if existing.partitions != partitions:
                render.error(
                    f"Topic {name!r} already exists with {existing.partitions} partition(s) on "
                    f"{backend.url}; tidings does not repartition a topic (keys would move). "
                    "Create a new topic instead."
                )
                raise typer.Exit(1)
            render.warn(f"Topic {name!r} already exists on {backend.url}; left unchanged.")
            return
        backend.ensure_topics([spec])
        render.done(
            f"Created topic {name!r} with {partitions} partition(s), retention "
            f"{render.retention(retention.total_seconds() if retention else None)}, "
            f"on {backend.url}."
        )


@topics_app.command("describe")
def describe_topic(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Topic name.")],
    broker: BrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a topic's partitions with their start and end offsets, and its delayed events."""
    with connect(broker, read_only=True) as backend:
        info = require(backend, name)
    if as_json:
        render.emit_json(topic_json(info))
        return
    offsets = list(zip(info.start_offsets, info.end_offsets, strict=True))
    if info.replicas:  # Kafka: who holds each partition
        render.table(
            ["partition", "start", "end", "events", "leader", "replicas", "in sync"],
            (
                (p, s, e, e - s, leader if leader >= 0 else "none", brokers(r), brokers(i))
                for p, ((s, e), leader, r, i) in enumerate(
                    zip(offsets, info.leaders, info.replicas, info.in_sync, strict=True)
                )
            ),
            title=describe_title(info)
            + f", replication {replication(info)}, min.insync.replicas {info.min_insync or '-'}",
        )
        if info.under_replicated:
            render.warn(under_replicated_warning(info))
    else:
        render.table(
            ["partition", "start", "end", "events"],
            ((p, s, e, e - s) for p, (s, e) in enumerate(offsets)),
            title=describe_title(info),
        )
    if info.delayed_pending:
        render.stdout().print(
            f"Delayed: {info.delayed_pending:,} pending, next due {render.due(info.next_due)}",
            markup=False,
        )


def describe_title(info: TopicInfo) -> str:
    return (
        f"{info.name}: {info.partitions} partition(s), retention "
        f"{render.retention(info.retention)}, {stored(info):,} event(s)"
    )


def replication(info: TopicInfo) -> int:
    """Replicas per partition (the most any partition has; they differ only mid-reassignment)."""
    return max((len(r) for r in info.replicas), default=0)


def brokers(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, sorted(ids))) or "none"


def under_replicated_warning(info: TopicInfo) -> str:
    parts = ", ".join(
        f"{p} ({len(info.in_sync[p])}/{len(info.replicas[p])} in sync)"
        for p in info.under_replicated
    )
    return (
        f"Topic {info.name!r} has under-replicated partitions: {parts}. A broker holding "
        "replicas is down or lagging; writes fail once fewer replicas than "
        f"min.insync.replicas ({info.min_insync or 'broker default'}) are in sync. Bring the "
        "broker back (`tidings topics describe` shows which)."
    )


def stored(info: TopicInfo) -> int:
    return sum(e - s for s, e in zip(info.start_offsets, info.end_offsets, strict=True))


def topic_json(info: TopicInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "partitions": info.partitions,
        "retention_seconds": info.retention,
        "events": stored(info),
        "start_offsets": list(info.start_offsets),
        "end_offsets": list(info.end_offsets),
        "delayed_pending": info.delayed_pending,
        "next_due": render.when(info.next_due),
        **(
            {
                "replication": replication(info),
                "min_insync_replicas": info.min_insync,
                "leaders": list(info.leaders),
                "replicas": [sorted(r) for r in info.replicas],
                "in_sync_replicas": [sorted(i) for i in info.in_sync],
                "under_replicated_partitions": list(info.under_replicated),
            }
            if info.replicas
            else {}
        ),
    }


def find(backend: Backend, name: str) -> TopicInfo | None:
    return next((t for t in backend.topics() if t.name == name), None)


def require(backend: Backend, name: str) -> TopicInfo:
    """Return the topic called `name`, or exit with an error that suggests a close name."""
    infos = backend.topics()
    info = next((t for t in infos if t.name == name), None)
    if info is not None:
        return info
    close = difflib.get_close_matches(name, [t.name for t in infos], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    render.error(
        f"No topic {name!r} on {backend.url}.{hint} See `tidings topics list`, or create it "
        f"with `tidings topics create {name}`."
    )
    raise typer.Exit(1)
