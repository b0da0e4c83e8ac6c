"""The `tidings` command line: run apps, and inspect topics, groups and dead letters.

Every command takes ``--broker URL`` (else ``$TIDINGS_BROKER``, else ``embedded://.tidings``).
Errors print one red line naming the problem and the fix; ``tidings --debug ...`` (or
``TIDINGS_DEBUG=1``) shows the traceback instead. Exit codes: 0 success, 1 error,
2 usage error or an APP that cannot be loaded, 130 interrupted.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tidings.cli import render
from tidings.cli.dlq import dlq_app
from tidings.cli.docs import docs as _docs
from tidings.cli.groups import groups_app
from tidings.cli.options import BrokerOpt
from tidings.cli.publish import publish as _publish
from tidings.cli.relay import relay as _relay
from tidings.cli.run import run as _run
from tidings.cli.schema import schema_app
from tidings.cli.tail import tail as _tail
from tidings.cli.topics import topics_app
from tidings.exceptions import AppLoadError, TidingsError

__all__ = ["app", "main"]


class _Root(TyperGroup):
    """Turns errors into one red line and an exit code (tracebacks only with --debug)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            render.warn("Interrupted.")
            raise typer.Exit(130) from None
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, AppLoadError):
                render.error(str(exc))
                raise typer.Exit(2) from None
            if isinstance(exc, TidingsError):
                render.error(str(exc))
            elif isinstance(exc, OSError):
                render.error(f"{exc}. Check the path and its permissions.")
            else:
                render.error(
                    f"unexpected {type(exc).__name__}: {exc}. Rerun with `tidings --debug ...` "
                    "for the traceback, and please report it."
                )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="tidings",
    help="Event-driven systems on Apache Kafka: run apps, inspect topics, groups, dead letters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from tidings import __version__

        try:
            installed = version("tidings")
        except PackageNotFoundError:
            installed = __version__
        typer.echo(f"tidings {installed}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="TIDINGS_DEBUG", help="Show tracebacks on errors."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the installed tidings version and exit.",
        ),
    ] = False,
) -> None:
    """tidings: event-driven systems on Apache Kafka."""


def _demo(
    duration: Annotated[
        float, typer.Option(metavar="S", min=0, help="Seconds of simulated traffic.")
    ] = 30.0,
    rate: Annotated[
        float, typer.Option(metavar="N", min=0, help="Events published per second.")
    ] = 20.0,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Random seed, for a repeatable run.")
    ] = None,
    broker: BrokerOpt = None,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard", help="Also serve the live status page on http://127.0.0.1:8765/."
        ),
    ] = False,
) -> None:
    """Run the reference account system with simulated traffic and live progress."""
    try:
        module = importlib.import_module("tidings.cli.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "tidings.cli.demo":
            raise
        render.error(
            "`tidings demo` is not available in this build (tidings.cli.demo is missing). "
            "Install a complete tidings release, or run `tidings run` on examples/accounts."
        )
        raise typer.Exit(1) from None
    code: int = module.demo(broker, duration, rate, seed, dashboard=dashboard)
    raise typer.Exit(code)


def _dashboard(
    http: Annotated[
        str,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Where to serve the page. Another address than loopback exposes it.",
        ),
    ] = "127.0.0.1:8765",
    allow_actions: Annotated[
        bool,
        typer.Option(
            "--allow-actions",
            help="Let the page replay a group's dead letters (each action is logged).",
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="TIDINGS_DASHBOARD_TOKEN",
            show_default=False,
            help="Token actions must send (needed for actions on a non-loopback address).",
        ),
    ] = None,
    broker: BrokerOpt = None,
) -> None:
    """Serve the live status page: groups, lag, workers, topics, delays and dead letters."""
    from tidings.cli.dashboard import dashboard  # imported here: keeps --help fast

    dashboard(http, allow_actions, token, broker)


app.command("run")(_run)
app.command("dashboard")(_dashboard)
app.command("demo")(_demo)
app.command("publish")(_publish)
app.command("tail")(_tail)
app.command("docs")(_docs)
app.command("relay")(_relay)
app.add_typer(topics_app)
app.add_typer(groups_app)
app.add_typer(dlq_app)
app.add_typer(schema_app)


def main() -> None:
    """Entry point of the `tidings` console script."""
    app()
