"""`tidings demo`: the reference account system under simulated traffic, with live progress.

The demo builds `examples/accounts` on a fresh embedded broker (or on ``--broker``), runs
all four consumer groups in this process, has simulated customers open, ban and close
accounts, and shows each group's progress live (`live`). When the traffic stops it waits
for every group to drain (settlements to finish, delayed events to come due), then audits
(`audit`): it reads back every event of this run from the broker and checks it against
each service's own ledger of what it handled. An event a group should have seen that it
neither handled nor dead-lettered is lost; the exit code is 0 only if nothing was lost.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from rich.text import Text

from tidings.cli import render
from tidings.cli.demo.audit import audit, print_edges, print_summary
from tidings.cli.demo.example import (
    DemoUnavailable,
    System,
    Traffic,
    load_example,
    longest_wait,
    settings_for,
)
from tidings.cli.demo.live import DemoRun

__all__ = ["demo"]

EMAIL_FAILURE_RATE = 0.02
"""Share of email attempts that fail transiently (the gateway is 'down'): they are retried."""
BOUNCE_RATE = 0.01
"""Share of new accounts whose address bounces: their emails show up as dead letters."""
DRAIN_SLACK = 30.0
"""Seconds, beyond the longest settlement and delay, that the demo waits for groups to drain."""


DASHBOARD_HTTP = "127.0.0.1:8765"
"""Where `tidings demo --dashboard` serves the status page (loopback, read-only)."""


def demo(
    broker: str | None,
    duration: float,
    rate: float,
    seed: int | None,
    *,
    dashboard: bool = False,
) -> int:
    """Run the demo; return the exit code (0: nothing lost, 1: something was, 130: Ctrl-C).

    With `dashboard`, the status page is served on `DASHBOARD_HTTP` while the demo runs.
    """
    try:
        system_module = load_example()
    except DemoUnavailable as exc:
        render.error(str(exc))
        return 1
    traffic_module = importlib.import_module("examples.accounts.traffic")
    seed = seed if seed is not None else random.randrange(1_000_000)
    data_dir = None
    if broker is None:
        data_dir = Path(tempfile.mkdtemp(prefix="tidings-demo-"))
        broker = f"embedded://{data_dir}"
    settings = settings_for(system_module, duration, seed, email_failure_rate=EMAIL_FAILURE_RATE)
    system = cast(System, system_module.build_system(broker, settings))
    traffic: Traffic = traffic_module.Traffic(system.service, seed=seed, bounce_rate=BOUNCE_RATE)
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
    page = None
    if dashboard:
        from tidings.dashboard import Dashboard, parse_bind

        system.app.status_interval = 1.0
        host, port = parse_bind(DASHBOARD_HTTP)
        page = Dashboard(system.app.backend, host=host, port=port, interval=1.0)
        page.start()
        console.print(f"dashboard: {page.url} (read-only, while the demo runs)")
    try:
        with _captured_logs() as recent:
            run = DemoRun(system, traffic, recent, duration=duration, rate=rate)
            interrupted = run.execute(console, drain_timeout=longest_wait(settings) + DRAIN_SLACK)
            if interrupted:
                keep_data = False
                render.warn("Interrupted: the consumers left without finishing their work.")
                return 130
            result = audit(system, run.runner, traffic.event_ids)
        print_summary(console, result, drained=run.drained)
        relayed = print_edges(console, system.app)
        keep_data = result.lost > 0 or not relayed
        return 0 if result.lost == 0 and relayed else 1
    finally:
        if page is not None:
            page.close()
        system.close()
        if data_dir is not None:
            if keep_data:
                render.warn(f"The broker's data is kept for inspection: embedded://{data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)


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
