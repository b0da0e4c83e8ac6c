"""The demo's audit: what each group should have seen against what its service handled.

What a group should have seen is read back from the broker (this run's events on the
topics it consumes, of the types its handlers take); what it handled comes from the
service's own ledger, and its dead letters from its dead-letter topics. The difference is
what was lost, event by event, never inferred from counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.app import App
from tidings.backends.base import Backend
from tidings.cli import render
from tidings.cli.demo.example import Ledger, System
from tidings.cli.reader import read_existing
from tidings.publisher import H_DUE, Published
from tidings.runtime.dead_letters import dlq_topic
from tidings.runtime.runner import Runner
from tidings.wire import H_CORRELATION, H_ID, H_TYPE, header_text


@dataclass(frozen=True)
class Logged:
    """An event as read back from the broker."""

    event_id: str
    event_type: str
    topic: str
    account_id: str
    correlation_id: str | None
    delayed: bool


@dataclass
class GroupAudit:
    """What one group was expected to see, and what became of it."""

    group: str
    expected: int = 0
    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    delayed: int = 0
    lost: list[str] = field(default_factory=list)


@dataclass
class Audit:
    published: int
    by_service: int
    delayed: int
    groups: list[GroupAudit]
    never_stored: list[str]
    """Ids the publishers got back that are not in the broker's log."""
    pending: int
    """Delayed events not yet due when the demo stopped waiting (not counted as lost)."""

    @property
    def lost(self) -> int:
        return len(self.never_stored) + sum(len(g.lost) for g in self.groups)


def audit(system: System, runner: Runner | None, traffic_ids: Sequence[str]) -> Audit:
    """Compare what each group should have seen (read from the broker) with its ledger."""
    assert runner is not None
    app, backend = system.app, system.app.backend
    roots = set(traffic_ids)
    topics = sorted({c.topic for c in app.consumers})
    # This run's events: the traffic's, and the follow-ups they caused (ctx.publish carries
    # the root event's id as correlation id). Older runs on a reused broker are ignored.
    run_events = [
        e
        for e in _read(backend, topics)
        if e.event_id in roots or (e.correlation_id is not None and e.correlation_id in roots)
    ]
    stored = {e.event_id for e in run_events}
    never_stored = [i for i in traffic_ids if i not in stored]
    pending = sum(i.delayed_pending for i in backend.topics() if i.name in topics)
    if pending == 0:
        scheduled: list[Published] = [
            *system.notifications.reminders_scheduled.values(),
            *system.onboarding.follow_ups_scheduled.values(),
        ]
        never_stored += [p.event_id for p in scheduled if p.event_id not in stored]
    ledgers: dict[str, Ledger] = {
        "payments": system.payments,
        "notifications": system.notifications,
        "analytics": system.analytics,
        "onboarding": system.onboarding,
    }
    stats = {w.group: w.statistics() for w in runner.workers}
    groups = []
    for group in app.groups():
        specs = [c for c in app.consumers if c.group == group]
        dead = {e.event_id for e in _read(backend, [dlq_topic(s.topic, group) for s in specs])}
        audit = GroupAudit(group, retried=stats[group]["retried"])
        for spec in specs:
            for event in run_events:
                if event.topic != spec.topic or not spec.handler.wants(event.event_type):
                    continue
                audit.expected += 1
                audit.delayed += event.delayed
                if ledgers[group].has_handled(event.event_id, event.event_type, event.account_id):
                    audit.handled += 1
                elif event.event_id in dead:
                    audit.dead_lettered += 1
                else:
                    audit.lost.append(event.event_id)
        groups.append(audit)
    return Audit(
        published=len(run_events),
        by_service=sum(e.event_id in roots for e in run_events),
        delayed=sum(e.delayed for e in run_events),
        groups=groups,
        never_stored=never_stored,
        pending=pending,
    )


def _read(backend: Backend, topics: Sequence[str]) -> list[Logged]:
    """Read every event the topics hold now (topics that do not exist hold none)."""
    existing = {info.name for info in backend.topics()}
    out = []
    for record in read_existing(backend, [t for t in topics if t in existing]):
        headers = record.headers
        event_id, event_type = header_text(headers, H_ID), header_text(headers, H_TYPE)
        if event_id is None or event_type is None:
            continue
        out.append(
            Logged(
                event_id=event_id,
                event_type=event_type,
                topic=record.topic,
                account_id=record.key.decode("utf-8", "replace") if record.key else "",
                correlation_id=header_text(headers, H_CORRELATION),
                delayed=header_text(headers, H_DUE) is not None,
            )
        )
    return out


def print_summary(console: Console, audit: Audit, *, drained: bool) -> None:
    follow_ups = audit.published - audit.by_service
    console.print(
        Text.assemble(
            ("\nPublished ", "bold"),
            (f"{audit.published:,}", "bold"),
            (" events: ", "bold"),
            f"{audit.by_service:,} by the accounts service, {follow_ups:,} follow-ups by "
            f"the consumers ({audit.delayed:,} of them delayed).",
        ),
        soft_wrap=True,
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("group")
    for name in ("expected", "handled", "retried", "dead-lettered", "delayed", "lost"):
        table.add_column(name, justify="right")
    for g in audit.groups:
        table.add_row(
            g.group,
            f"{g.expected:,}",
            f"{g.handled:,}",
            f"{g.retried:,}",
            Text(f"{g.dead_lettered:,}", style="yellow" if g.dead_lettered else ""),
            f"{g.delayed:,}",
            Text(f"{len(g.lost):,}", style="bold red" if g.lost else "green"),
        )
    console.print(table)
    console.print(
        Text(
            "expected: this run's events the group subscribes to, read back from the broker. "
            "handled: in the service's own ledger. dead-lettered: in <topic>.<group>.dlq "
            "(bounced emails). lost: expected, yet neither.",
            style="dim",
        )
    )
    if audit.pending:
        render.warn(f"{audit.pending} delayed events were not due yet when the demo stopped.")
    if audit.never_stored:
        render.error(f"{len(audit.never_stored)} published events are missing from the broker.")
    if not drained:
        render.warn("The groups had not drained when the demo stopped waiting.")
    if audit.lost == 0:
        console.print(Text("✓ Nothing was lost.", style="bold green"))
    else:
        render.error(f"{audit.lost} events were lost.")


def print_edges(console: Console, app: App) -> bool:
    """Print the outbox and inbox lines; return False if a committed event was not relayed."""
    committed = sum(o.committed for o in app.outboxes)
    relayed = sum(o.relayed for o in app.outboxes)
    if app.outboxes:
        console.print(
            Text.assemble(
                ("Outbox: ", "bold"),
                f"{committed:,} events committed, {relayed:,} relayed",
                ("" if relayed == committed else " (not all relayed)", "bold red"),
            )
        )
    if app.inboxes:
        skipped = sum(i.skipped for i in app.inboxes)
        console.print(
            Text.assemble(("Inbox: ", "bold"), f"{skipped:,} duplicate deliveries skipped")
        )
    return relayed == committed
