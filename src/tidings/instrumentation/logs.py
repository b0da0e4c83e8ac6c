"""Log formats for `tidings run --log-format auto|rich|plain|json`.

plain and json write one record per line with an ISO 8601 timestamp (UTC, with its
offset), the level, the logger, the message, and the fields a record carries where they
apply (group, topic, partition, offset, event_id: passed by tidings as ``extra=``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FIELDS = ("group", "topic", "partition", "offset", "event_id")
FORMATS = ("auto", "rich", "plain", "json")
HANDLER_NAME = "tidings-cli"


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: getattr(record, k) for k in FIELDS if getattr(record, k, None) is not None}


class PlainFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: message key=value ...``, newlines escaped: one record a line."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name}: {text}"
        if extra:
            line += " " + extra
        return line.replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def make_handler(fmt: str) -> logging.Handler:
    """A stderr handler for `fmt` ("auto": rich on a terminal, plain otherwise)."""
    if fmt == "auto":
        fmt = "rich" if sys.stderr.isatty() else "plain"
    if fmt == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(stderr=True),
            show_path=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,
            markup=False,
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    handler.set_name(HANDLER_NAME)
    return handler


def configure_logging(level: str, fmt: str = "auto") -> None:
    """Send log records to stderr in `fmt`, at `level` and above (replacing an earlier one)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(make_handler(fmt))
    root.setLevel(level.upper())
