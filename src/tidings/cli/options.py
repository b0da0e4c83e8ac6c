"""Options shared by every command, and parsers for durations and times on the command line."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated

import typer

from tidings.backends.base import Backend
from tidings.backends.registry import open_backend

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        metavar="URL",
        show_default=False,
        help="Broker URL: kafka://host:port or embedded://PATH. "
        "Default: $TIDINGS_BROKER, else embedded://.tidings.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``12h``, ``7d``, ``2w`` or ``1h30m`` into a timedelta.

    A bare number is refused: ``--retention 7`` meant 7 seconds to the code and most likely
    7 days to whoever typed it, and a retention that short deletes events.

    Raises:
        typer.BadParameter: the text has no unit or is not a positive duration.
    """
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        raise typer.BadParameter(
            f"{text!r} has no unit; write {value}d for days, {value}h for hours, {value}m "
            f"for minutes or {value}s for seconds (e.g. 7d, 12h, 30m, 45s)."
        )
    seconds: float | None = None
    if value and _PART.sub("", value) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds is None or seconds <= 0:
        raise typer.BadParameter(
            f"{text!r} is not a positive duration; use e.g. 30s, 5m, 12h, 7d or 1h30m."
        )
    return timedelta(seconds=seconds)


def parse_when(text: str) -> float:
    """Parse an ISO 8601 date or datetime into epoch seconds (no zone: local time).

    Raises:
        typer.BadParameter: the text is not an ISO datetime.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not 'earliest', 'latest' or an ISO datetime such as "
            "2024-05-01T12:00:00Z (without a zone, local time is meant)."
        ) from None
    return moment.timestamp()


@contextlib.contextmanager
def connect(broker: str | None, *, read_only: bool = False) -> Iterator[Backend]:
    """Open the broker named by `broker` (see `--broker`) and close it afterwards.

    Commands that only look pass `read_only`: they never create an embedded store (a
    missing one is an error naming its absolute path) and can read one they cannot write.
    The Kafka client's log lines (e.g. one per failed connection attempt) are held back
    meanwhile: a command that cannot reach the broker fails with one clear error instead.
    """
    client_log = logging.getLogger("tidings.kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        backend = open_backend(broker, read_only=read_only)
        try:
            yield backend
        finally:
            backend.close()
    finally:
        client_log.setLevel(level)
