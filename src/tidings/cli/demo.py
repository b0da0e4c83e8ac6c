"""`tidings demo`: the reference account system under simulated traffic, with live progress.

The demo builds `examples/accounts` on a fresh embedded broker (or on ``--broker``), runs
all four consumer groups in this process, has simulated customers open, ban and close
accounts, and shows each group's progress live. When the traffic stops it waits for every
group to drain (settlements to finish, delayed events to come due), then audits: it reads
back every event of this run from the broker and checks it against each service's own
ledger of what it handled. An event a group should have seen that it neither handled nor
dead-lettered is lost; the exit code is 0 only if nothing was lost.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

import tidings
from tidings.app import App
from tidings.backends.base import Backend
from tidings.cli import render
from tidings.cli.reader import read_existing
from tidings.publisher import H_DUE, Published
from tidings.runtime.dead_letters import dlq_topic
from tidings.runtime.runner import Runner
from tidings.wire import H_CORRELATION, H_ID, H_TYPE, header_text

REFRESH = 0.25
EMAIL_FAILURE_RATE = 0.02
"""Share of emails whose first try fails (the gateway is 'down'): they show up as retries."""
BOUNCE_RATE = 0.01
"""Share of new accounts whose address bounces: their emails show up as dead letters."""
DRAIN_SLACK = 30.0
"""Seconds, beyond the longest settlement and delay, that the demo waits for groups to drain."""


class _Ledger(Protocol):
    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool: ...


class _System(Protocol):
    """What the demo uses of examples.accounts.system.AccountSystem."""

    app: App
    service: Any
    payments: _Ledger
    notifications: Any
    analytics: _Ledger
    onboarding: Any

    def close(self) -> None: ...


class _Settings(Protocol):
    settlement: timedelta
    reminder_delay: timedelta
    follow_up_delay: timedelta


class DemoUnavailable(Exception):
    """The example package is not next to this tidings installation or in the cwd."""


def demo(broker: str | None, duration: float, rate: float, seed: int | None) -> int:
    """Run the demo; return the exit code (0: nothing lost, 1: something was, 130: Ctrl-C)."""
    try:
        system_module = _load_example()
    except DemoUnavailable as exc:
        render.error(str(exc))
        return 1
    traffic_module = importlib.import_module("examples.accounts.traffic")
    seed = seed if seed is not None else random.randrange(1_000_000)
    data_dir = None
    if broker is None:
        data_dir = Path(tempfile.mkdtemp(prefix="tidings-demo-"))
        broker = f"embedded://{data_dir}"
    settings = _settings(system_module, duration, seed)
    system = cast(_System, system_module.build_system(broker, settings))
    traffic = traffic_module.Traffic(system.service, seed=seed, bounce_rate=BOUNCE_RATE)
    console = render.stdout()
    console.print(
        Text.assemble(
            ("tidings demo", "bold"),
            f": the account system on {broker}, {rate:g} events/s for {duration:g} s "
            f"(seed {seed}; settlement {settings.settlement.total_seconds():g} s, "
            f"reminders after {settings.reminder_delay.total_seconds():g} s)",
        ),
        soft_wrap=True,
    )
    keep_data = True  # for inspection, unless the run ends cleanly or is interrupted
    try:
        with _captured_logs() as recent:
            run = _Run(system, traffic, recent, duration=duration, rate=rate)
            interrupted = run.execute(console, drain_timeout=_longest_wait(settings) + DRAIN_SLACK)
            if interrupted:
                keep_data = False
                render.warn("Interrupted: the consumers left without finishing their work.")
                return 130
            audit = _audit(system, run.runner, traffic.event_ids)
        _print_summary(console, audit, run)
        keep_data = audit.lost > 0
        return 0 if audit.lost == 0 else 1
    finally:
        system.close()
        if data_dir is not None:
            if keep_data:
                render.warn(f"The broker's data is kept for inspection: embedded://{data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)


# -- finding and configuring the example -------------------------------------------------------


def _load_example() -> ModuleType:
    """Import `examples.accounts.system` from the repository, or from the working directory."""
    candidates = [Path(tidings.__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"]
    for examples in candidates:
        if (examples / "accounts" / "system.py").is_file():
            root = str(examples.parent)
            if root not in sys.path:
                sys.path.insert(0, root)
            module = importlib.import_module("examples.accounts.system")
            if not Path(module.__file__ or "").resolve().is_relative_to(examples.resolve()):
                raise DemoUnavailable(
                    f"`examples.accounts` was imported from {module.__file__}, not from "
                    f"{examples}; another package named `examples` shadows it."
                )
            return module
    raise DemoUnavailable(
        "The demo runs the example in examples/accounts, which was not found next to this "
        f"tidings installation ({candidates[0]}) or in the working directory. Run "
        "`tidings demo` from a checkout of the tidings repository."
    )


def _settings(system_module: ModuleType, duration: float, seed: int) -> _Settings:
    """Scale the example's timings to the demo's length, so a short demo stays short."""

    def scaled(share: float, low: float, high: float) -> timedelta:
        return timedelta(seconds=min(high, max(low, duration * share)))

    settings: _Settings = system_module.Settings(
        settlement=scaled(0.4, 0.5, 12.0),
        reminder_delay=scaled(0.25, 1.0, 8.0),
        follow_up_delay=scaled(0.15, 1.0, 5.0),
        email_failure_rate=EMAIL_FAILURE_RATE,
        seed=seed,
    )
    return settings


def _longest_wait(settings: _Settings) -> float:
    waits = (settings.settlement, settings.reminder_delay, settings.follow_up_delay)
    return max(w.total_seconds() for w in waits)


@contextlib.contextmanager
def _captured_logs() -> Iterator[collections.deque[str]]:
    """Show tidings' warnings (retries, dead letters) inside the live view, not over it."""
    recent: collections.deque[str] = collections.deque(maxlen=4)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            recent.append(record.getMessage())

    logger = logging.getLogger("tidings")
    handler = Keep(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield recent
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# -- running and watching ---------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRow:
    """One group's progress at one moment."""

    group: str
    processed: int
    lag: int
    in_flight: int
    retried: int
    dead_lettered: int
    delayed_pending: int

    @property
    def idle(self) -> bool:
        return self.lag == 0 and self.in_flight == 0 and self.delayed_pending == 0


class _Run:
    """Runs the consumers and the traffic, and renders the live view until drained."""

    def __init__(
        self,
        system: _System,
        traffic: Any,
        recent: collections.deque[str],
        *,
        duration: float,
        rate: float,
    ) -> None:
        self.system = system
        self.app = system.app
        self.traffic = traffic
        self.recent = recent
        self.duration = duration
        self.rate = rate
        self.stop = threading.Event()
        self.traffic_error: BaseException | None = None
        self.runner: Runner | None = None
        self.rows: list[GroupRow] = []
        self.elapsed = 0.0
        self.traffic_seconds: float | None = None
        self.drained = False

    def execute(self, console: Any, *, drain_timeout: float) -> bool:
        """Run everything; return True if interrupted with Ctrl-C."""
        start = time.monotonic()
        driver = threading.Thread(target=self._drive, name="demo-traffic", daemon=True)
        with (
            self.app.running() as runner,
            Live(console=console, refresh_per_second=1 / REFRESH, transient=False) as live,
        ):
            self.runner = runner
            try:
                driver.start()
                while driver.is_alive():
                    self._refresh(live, start, "publishing")
                    driver.join(REFRESH)
                self.traffic_seconds = time.monotonic() - start
                deadline = time.monotonic() + drain_timeout
                while time.monotonic() < deadline:
                    self._refresh(live, start, "draining")
                    if self.drained:
                        break
                    time.sleep(REFRESH)
                self._refresh(live, start, "done" if self.drained else "gave up waiting")
            except KeyboardInterrupt:
                self.stop.set()
                runner.abort()
                return True
        if self.traffic_error is not None:
            raise self.traffic_error
        return False

    def _drive(self) -> None:
        try:
            self.traffic.run(rate=self.rate, duration=self.duration, stop=self.stop)
        except BaseException as exc:
            self.traffic_error = exc

    def _refresh(self, live: Live, start: float, phase: str) -> None:
        self.elapsed = time.monotonic() - start
        self.rows = self.sample()
        self.drained = (
            phase != "publishing"
            and all(row.idle for row in self.rows)
            and self._delayed_delivered()
        )
        live.update(self._view(phase))

    def _delayed_delivered(self) -> bool:
        """Return whether every delayed event the services scheduled reached its handler.

        The broker's count of pending delayed events is not enough: a backend may hold
        them somewhere it does not count (e.g. Kafka's scheduler topics).
        """
        system = self.system
        for ledger, scheduled in (
            (system.notifications, system.notifications.reminders_scheduled),
            (system.onboarding, system.onboarding.follow_ups_scheduled),
        ):
            for account_id, published in list(scheduled.items()):
                if not ledger.has_handled(published.event_id, "", account_id):
                    return False
        return True

    def sample(self) -> list[GroupRow]:
        """Read each group's counters (from its worker) and lag and delays (from the broker)."""
        assert self.runner is not None
        backend = self.app.backend
        lags = {info.group: info.lag for info in backend.groups()}
        pending = {info.name: info.delayed_pending for info in backend.topics()}
        rows = []
        for worker in self.runner.workers:
            stats = worker.statistics()
            topics = {spec.topic for spec in worker.specs}
            rows.append(
                GroupRow(
                    group=worker.group,
                    processed=stats["handled"],
                    lag=lags.get(worker.group, 0),
                    in_flight=stats["in_flight"],
                    retried=stats["retried"],
                    dead_lettered=stats["dead_lettered"],
                    delayed_pending=sum(pending.get(t, 0) for t in topics),
                )
            )
        return rows

    def _view(self, phase: str) -> RenderableType:
        published = len(self.traffic.event_ids)
        seconds = (self.traffic_seconds or self.elapsed) or 1e-9
        header = Text.assemble(
            (f"{phase:<17}", "bold cyan"),
            f"{self.elapsed:5.1f} s   {published:,} account events published ",
            (f"({published / seconds:.0f}/s)", "dim"),
        )
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("group")
        for name in ("processed", "lag", "in flight", "retried", "dead-lettered", "delayed"):
            table.add_column(name, justify="right")
        for row in self.rows:
            table.add_row(
                row.group,
                f"{row.processed:,}",
                Text(f"{row.lag:,}", style="yellow" if row.lag else "green"),
                f"{row.in_flight:,}",
                Text(f"{row.retried:,}", style="yellow" if row.retried else ""),
                Text(f"{row.dead_lettered:,}", style="red" if row.dead_lettered else ""),
                f"{row.delayed_pending:,}",
            )
        parts: list[RenderableType] = [header, table]
        if phase in ("publishing", "draining"):
            legend = "lag: events not yet committed; delayed: scheduled, not yet due"
            parts.append(Text(legend, style="dim"))
            parts += [
                Text(line, style="dim", no_wrap=True, overflow="ellipsis") for line in self.recent
            ]
        return Group(*parts)


# -- the audit ----------------------------------------------------------------------------------


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


def _audit(system: _System, runner: Runner | None, traffic_ids: Sequence[str]) -> Audit:
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
    ledgers: dict[str, _Ledger] = {
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


def _print_summary(console: Any, audit: Audit, run: _Run) -> None:
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
    if not run.drained:
        render.warn("The groups had not drained when the demo stopped waiting.")
    if audit.lost == 0:
        console.print(Text("✓ Nothing was lost.", style="bold green"))
    else:
        render.error(f"{audit.lost} events were lost.")
