"""Terminal output shared by the commands: consoles, tables, JSON, times and messages.

Data from the broker (topic names, keys, values, error messages) is never interpreted as
rich markup: it goes into `Text` objects or is escaped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | int | float | None
MAX_DEPTH = 200
"""JSON values nested deeper than this are summarised, not shown: parsing and printing them
recurses once per level, and Python's stack allows about 1,000 levels."""


def stdout() -> Console:
    """Return a console on the current stdout (looked up per call, so tests can capture it)."""
    return Console(file=sys.stdout, highlight=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False)


def error(message: str) -> None:
    """Print one red line on stderr: the problem and how to fix it."""
    stderr().print(Text.assemble(("error: ", "bold red"), (message, "red")), soft_wrap=True)


def warn(message: str) -> None:
    stderr().print(Text(message, style="yellow"), soft_wrap=True)


def done(message: str) -> None:
    """Print a success line on stdout (message is plain text, not markup)."""
    stdout().print(Text.assemble(("✓ ", "green"), message), soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Cell]], *, title: str | None = None
) -> None:
    """Print a table; numeric columns are right-aligned, None shows as '-'."""
    materialised = [list(r) for r in rows]
    grid = Table()
    for i, name in enumerate(columns):
        numeric = bool(materialised) and all(
            isinstance(r[i], int | float) or r[i] is None for r in materialised
        )
        grid.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in materialised:
        grid.add_row(*(Text(cell_text(c)) for c in row))
    console = stdout()
    if title:
        console.print(Text(title, style="bold"), soft_wrap=True)
    console.print(grid)


def cell_text(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def when(ts: float | None) -> str | None:
    """Format epoch seconds as RFC 3339 UTC, to the millisecond (None stays None)."""
    return None if ts is None else format_time(ts)


def format_time(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def due(ts: float | None, now: float | None = None) -> str | None:
    """Format a due time with how far away it is, e.g. '2024-05-01T12:00:00.000Z (in 4m 10s)'."""
    if ts is None:
        return None
    delta = ts - (time.time() if now is None else now)
    rel = f"in {span(delta)}" if delta >= 0 else f"{span(-delta)} ago"
    return f"{format_time(ts)} ({rel})"


def span(seconds: float) -> str:
    """Format a duration compactly: 45s, 4m 10s, 3h 5m, 7d, 2d 4h."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])


def retention(seconds: float | None) -> str:
    return "default" if seconds is None else span(seconds)


def compact_json(value: bytes | None) -> str:
    """Render a record value: compact JSON when it is JSON, else a repr of the bytes.

    A value nested too deeply to parse or print safely shows as a one-line summary.
    """
    if value is None:
        return "null"
    try:
        return json.dumps(load_json(value), separators=(",", ":"), ensure_ascii=False)
    except TooDeep:
        return too_deep(value)
    except (ValueError, UnicodeDecodeError):
        return repr(value)


def json_value(value: bytes | None) -> Any:
    """Return a record value as a JSON-friendly object (parsed JSON, else text).

    A value nested too deeply to parse or print safely becomes a summary string.
    """
    if value is None:
        return None
    try:
        return load_json(value)
    except TooDeep:
        return too_deep(value)
    except (ValueError, UnicodeDecodeError):
        return value.decode("utf-8", "replace")


class TooDeep(Exception):
    """A JSON value nests more than MAX_DEPTH levels."""


def load_json(value: bytes) -> Any:
    """Parse JSON, raising TooDeep instead of RecursionError (or later failures to print)."""
    try:
        doc = json.loads(value)
    except RecursionError:
        raise TooDeep from None
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise TooDeep
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)
    return doc


def too_deep(value: bytes) -> str:
    return f"(value too deeply nested to display, {len(value):,} bytes)"


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")
