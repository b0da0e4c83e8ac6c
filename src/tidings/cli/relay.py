"""`tidings relay APP`: move an app's committed outbox rows to the broker.

`tidings run` relays too; this command is for a relay process of its own (several may run:
one leads at a time on PostgreSQL, one writes at a time on SQLite).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

from tidings.cli import render
from tidings.cli.options import BrokerOpt

if TYPE_CHECKING:
    from tidings.outbox import Relay


def relay(
    app_spec: Annotated[
        str, typer.Argument(metavar="APP", help="The app as module:attribute, e.g. shop:app.")
    ],
    once: Annotated[
        bool, typer.Option("--once", help="Relay what is committed now, print counts, exit.")
    ] = False,
    every: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Seconds between progress lines.")
    ] = 10.0,
    broker: BrokerOpt = None,
) -> None:
    """Relay the app's outbox rows to the broker until SIGTERM or Ctrl-C (or --once).

    Prints how many events were relayed, the backlog left in the outbox, and the age of
    its oldest row.
    """
    from tidings.cli.loader import load_app  # imported here: the app loads pydantic
    from tidings.outbox import Relay  # optional extra: imported only when used

    app = load_app(app_spec)
    if not app.outboxes:
        render.error(
            f"App {app.name!r} ({app_spec}) declares no outbox; create one with "
            "`outbox = app.outbox(engine)` in the app's module."
        )
        raise typer.Exit(2)
    if broker is not None:
        app.close()
        app.broker = broker
    relays = [Relay(outbox) for outbox in app.outboxes]
    started = time.monotonic()
    try:
        if once:
            for r in relays:
                r.drain()
                r.close()
        else:
            stop = threading.Event()
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                with contextlib.ExitStack() as stack:
                    for r in relays:
                        stack.enter_context(r.running())
                    render.done(f"relaying {app.name} to {app.broker_url}; Ctrl-C stops")
                    while not stop.wait(every):
                        _report(relays, started)
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
        _report(relays, started)
    finally:
        app.close()


def _report(relays: list[Relay], started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    for r in relays:
        stats = r.outbox.statistics()
        oldest = "-" if stats.oldest_age is None else render.span(stats.oldest_age)
        typer.echo(
            f"relayed {r.relayed} ({r.relayed / elapsed:,.0f}/s), backlog {stats.backlog}, "
            f"oldest {oldest}"
        )
