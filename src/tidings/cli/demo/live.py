"""The demo's run: consumers and traffic, and the live view of every group until drained."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tidings.cli.demo.example import System, Traffic
from tidings.runtime.runner import Runner

REFRESH = 0.25
"""Seconds between refreshes of the live view (4 per second)."""


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


class DemoRun:
    """Runs the consumers and the traffic, and renders the live view until drained."""

    def __init__(
        self,
        system: System,
        traffic: Traffic,
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

    def execute(self, console: Console, *, drain_timeout: float) -> bool:
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
            and all(o.relayed >= o.committed for o in self.app.outboxes)
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
