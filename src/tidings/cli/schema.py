"""`tidings schema lock/check APP`: event schemas against a lock file, offline.

``lock`` writes the JSON Schema of every Event type the app publishes or consumes to
``tidings.schema.lock`` (see `tidings.schema.lock`); ``check`` compares the current classes
with it under a compatibility mode and exits 1 naming each breaking change and its fix.
Neither touches a broker or a registry, so both run in CI.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tidings.cli import render

schema_app = typer.Typer(
    name="schema",
    help="Lock the app's event schemas and check changes for compatibility (offline).",
    no_args_is_help=True,
)


class ModeOpt(StrEnum):
    """The compatibility modes (tidings.schema.compat.Mode, without importing it)."""

    backward = "backward"
    backward_transitive = "backward_transitive"
    forward = "forward"
    forward_transitive = "forward_transitive"
    full = "full"
    full_transitive = "full_transitive"
    none = "none"


AppArg = Annotated[str, typer.Argument(metavar="APP", help="The app, as module:attribute.")]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        metavar="PATH",
        show_default=False,
        help="The lock file. Default: ./tidings.schema.lock, else the one in the APP "
        "module's package directory if there is one there.",
    ),
]
ModeOption = Annotated[
    ModeOpt,
    typer.Option(
        "--mode",
        help="backward: new consumers read old events; forward: old consumers read new "
        "events; full: both; *_transitive: against every locked schema of the version.",
    ),
]
DEFAULT_FILE = Path("tidings.schema.lock")


def _lock_path(file: Path | None, spec: str) -> Path:
    """--file, else ./tidings.schema.lock, else the APP package's (when that one exists)."""
    if file is not None:
        return file
    if DEFAULT_FILE.exists():
        return DEFAULT_FILE
    module = sys.modules.get(spec.partition(":")[0])
    package = sys.modules.get(getattr(module, "__package__", None) or "")
    for folder in getattr(package, "__path__", None) or []:
        candidate = Path(folder) / DEFAULT_FILE.name
        if candidate.exists():
            return Path(os.path.relpath(candidate))
    return DEFAULT_FILE


def _current(spec: str) -> tuple[str, dict[str, tuple[int, dict[str, Any]]], dict[str, list[int]]]:
    """The app's name, its events' (version, schema) by type, and missing upcaster steps."""
    from tidings.cli.loader import load_app  # lazily: loading an app imports pydantic
    from tidings.schema.events import app_events, json_schema
    from tidings.upcasting import missing_steps

    app = load_app(spec)
    events = app_events(app, spec.partition(":")[0])
    current = {name: (cls.event_version, json_schema(cls)) for name, cls in events.items()}
    missing = {name: missing_steps(cls) for name, cls in events.items()}
    return app.name, current, missing


def _read(path: Path) -> dict[str, Any] | None:
    from tidings.schema import lock

    if not path.exists():
        return None
    try:
        return lock.read(path)
    except ValueError as exc:
        render.error(str(exc))
        raise typer.Exit(1) from None


@schema_app.command("lock")
def lock_cmd(
    app: AppArg,
    file: FileOpt = None,
    mode: ModeOption = ModeOpt.backward,
    force: Annotated[
        bool, typer.Option("--force", help="Record the schemas even if a change breaks.")
    ] = False,
) -> None:
    """Write the JSON Schema of every event APP publishes or consumes to the lock file.

    A changed schema is appended to its version's history. A breaking change (under
    --mode) is refused unless --force: bump the event's version and add an upcaster instead.
    """
    from tidings.schema import lock
    from tidings.schema.compat import Mode

    name, current, missing = _current(app)
    file = _lock_path(file, app)
    existing = _read(file)
    if existing is not None and not force:
        report = lock.compare(existing, current, Mode(mode.value), missing)
        if report.errors:
            _print(report, file)
            render.error(
                f"Not locking: {len(report.errors)} breaking change(s) under --mode "
                f"{mode.value}. Fix them, or pass --force to record them anyway."
            )
            raise typer.Exit(1)
    new = lock.update(existing or lock.empty(name), current)
    file.write_text(lock.dump(new), encoding="utf-8")
    render.done(f"Locked {len(current)} event type(s) of {name!r} in {file}.")


@schema_app.command("check")
def check_cmd(app: AppArg, file: FileOpt = None, mode: ModeOption = ModeOpt.backward) -> None:
    """Compare APP's event classes with the lock file; exit 1 on a breaking change.

    Each breaking change is named with its field, who cannot read what, and the fix.
    New event types and versions are noted (run `tidings schema lock` to record them).
    """
    from tidings.schema import lock
    from tidings.schema.compat import Mode

    _, current, missing = _current(app)  # first: the package's lock is found from the module
    file = _lock_path(file, app)
    existing = _read(file)
    if existing is None:
        render.error(f"No lock file at {file}. Create it with `tidings schema lock {app}`.")
        raise typer.Exit(1)
    report = lock.compare(existing, current, Mode(mode.value), missing)
    _print(report, file)
    if report.errors:
        render.error(f"{len(report.errors)} breaking change(s) against {file} (mode {mode.value}).")
        raise typer.Exit(1)
    render.done(f"{len(current)} event type(s) compatible with {file} (mode {mode.value}).")


def _print(report: Any, file: Path) -> None:
    out = render.stdout()
    for finding in report.findings:
        style = "red" if finding.error else "yellow"
        mark = "✗" if finding.error else "•"
        out.print(
            Text.assemble((f"{mark} {finding.event}: ", f"bold {style}"), finding.text),
            soft_wrap=True,
        )
