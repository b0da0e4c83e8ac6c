"""`tidings run APP`: run an app's consumers until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

import typer

from tidings.cli import render
from tidings.cli.options import BrokerOpt

log = logging.getLogger("tidings.cli")


class LogFormat(StrEnum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def run(
    app_spec: Annotated[
        str, typer.Argument(metavar="APP", help="The app as module:attribute, e.g. shop:app.")
    ],
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            metavar="G",
            show_default=False,
            help="Run only this consumer group (repeat for several). Default: all groups.",
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            metavar="S",
            min=0,
            show_default=False,
            help="Seconds in-flight handlers get to finish on shutdown (default: the app's).",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="Logging threshold.")
    ] = LogLevel.info,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="rich, plain (one line per record, ISO 8601 times), json (one object per "
            "line), or auto: rich on a terminal, plain otherwise.",
        ),
    ] = LogFormat.auto,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            show_default=False,
            help="Serve /metrics, /livez and /readyz here (needs tidings[metrics]). "
            "127.0.0.1:PORT keeps them off the network.",
        ),
    ] = None,
    broker: BrokerOpt = None,
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            "-w",
            metavar="N",
            show_default=False,
            help="Run N supervised worker processes (or 'auto': one per CPU), restarted when "
            "they exit, hang or pass --max-memory. Default: this one process.",
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            metavar="SIZE",
            show_default=False,
            help="Drain and restart a worker whose resident memory passes SIZE (e.g. 512MB, "
            "1GiB). Implies --workers 1 if not given.",
        ),
    ] = None,
    heartbeat_timeout: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-timeout",
            metavar="S",
            show_default=False,
            help="Kill and restart a worker whose poll loop has not turned for S seconds "
            "(default 15; a handler running long does not count).",
        ),
    ] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Restart the workers when the app's *.py files change (development; needs "
            "tidings[reload]). Implies --workers 1 if not given.",
        ),
    ] = False,
) -> None:
    """Run the app's consumers (all groups, or those named) until SIGTERM or Ctrl-C.

    The first signal stops fetching, lets in-flight handlers finish within the grace
    period, commits and leaves the groups; a second Ctrl-C aborts at once. With --workers
    a supervisor runs that many worker processes and keeps them alive (see README,
    "Workers").
    """
    from tidings.cli.loader import load_app  # imported here: the app loads pydantic
    from tidings.exceptions import ConfigurationError
    from tidings.instrumentation.logs import configure_logging

    app = load_app(app_spec)
    known = app.groups()
    unknown = [g for g in group or [] if g not in known]
    if unknown:
        render.error(
            f"App {app.name!r} ({app_spec}) has no consumer group {unknown[0]!r}; its groups "
            f"are: {', '.join(known) or '(none)'}. Pass one of them to --group."
        )
        raise typer.Exit(2)
    if broker is not None:
        app.close()
        app.broker = broker
    if grace is not None:
        app.grace = grace
    chosen = list(dict.fromkeys(group or known))
    configure_logging(log_level.value, log_format.value)
    if workers is not None or max_memory is not None or heartbeat_timeout is not None or reload:
        from tidings.cli.supervise import supervise

        code = supervise(
            app,
            app_spec,
            chosen if group else [],
            workers=workers,
            max_memory=max_memory,
            heartbeat_timeout=heartbeat_timeout,
            reload=reload,
            broker=broker,
            grace=grace,
            log_level=log_level.value,
            log_format=log_format.value,
            http=http,
        )
        raise typer.Exit(code)
    server = None
    if http is not None:
        from tidings.instrumentation.http import parse_address, start_http

        try:
            host, port = parse_address(http)
            server = start_http(app.listeners, chosen, host, port)
        except ConfigurationError as exc:
            render.error(str(exc))
            raise typer.Exit(2) from None
    log.info(
        "running %s (%s): groups %s on %s; SIGTERM or Ctrl-C stops gracefully",
        app.name,
        app_spec,
        ", ".join(chosen) or "(none)",
        app.broker_url,
    )
    try:
        app.run(chosen or None)
    finally:
        if server is not None:
            server.close()
    log.info("stopped %s cleanly", app.name)
