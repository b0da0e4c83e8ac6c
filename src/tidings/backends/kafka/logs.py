"""librdkafka's log lines and error callbacks, through Python logging, without the flood.

While a broker is unreachable librdkafka reports every reconnect attempt (several a
second, per client), and each tidings process runs a producer, an admin client and a
consumer per group. The user needs the first line and the clear exception tidings raises,
not hundreds of copies, so each distinct line (numbers ignored) is logged at most once a
minute, with a count of the copies held back. Nothing is printed raw to stderr: every
client gets this as its `logger`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Final

LOG = logging.getLogger("tidings.kafka")

REPEAT_EVERY: Final = 60.0
"""Seconds before the same line (numbers ignored) is logged again."""
_MAX_KINDS: Final = 1000
_NUMBERS = re.compile(r"\d+")


class QuietLog:
    """A `logger` for librdkafka clients that logs each distinct line once a minute.

    confluent-kafka calls ``log(level, "%s [%s] %s", facility, client, message)``;
    tidings' error callbacks call `log` too.
    """

    def __init__(self, logger: logging.Logger = LOG, every: float = REPEAT_EVERY) -> None:
        self._logger = logger
        self._every = every
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, msg: str, *args: object) -> None:
        if not self._logger.isEnabledFor(level):
            return
        text = msg % args if args else msg
        kind = _NUMBERS.sub("#", text)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last[0] < self._every:
                self._last[kind] = (last[0], last[1] + 1)
                return
            if len(self._last) >= _MAX_KINDS:
                self._last.clear()
            self._last[kind] = (now, 0)
        held = last[1] if last is not None else 0
        suffix = f" ({held} more like it in the last {self._every:g} s)" if held else ""
        self._logger.log(level, "%s%s", text, suffix)


QUIET = QuietLog()
"""The one instance every client shares, so copies from all of them count together."""
