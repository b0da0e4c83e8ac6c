"""One worker process of `tidings run --workers N`: ``python -m tidings.workers.worker JSON``.

The supervisor starts it in a fresh interpreter (fork + exec: librdkafka is not fork-safe)
in a process group of its own, so a Ctrl-C at the terminal reaches only the supervisor,
which then stops its workers with SIGTERM. The JSON argument carries the `WorkerCommand`
fields plus ``index``, ``instance`` (the stable part of its member ids) and ``fd`` (the
write end of its heartbeat pipe). Nothing is unpickled.

Exit status: 0 after a graceful stop, 130 after an abort, 2 if the app cannot be loaded,
1 if a consumer failed.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from tidings.workers.heartbeat import Heartbeat

log = logging.getLogger("tidings.workers")


class _Prefix(logging.Filter):
    """Starts every log line of this process with ``[worker N]``."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"[worker {index}] "

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_tidings_worker", False):
            record.msg = self.prefix + str(record.msg)
            record._tidings_worker = True
        return True


def main(argv: list[str]) -> int:
    """Run one worker as `argv[0]` (JSON) describes; return the exit status."""
    spec: dict[str, Any] = json.loads(argv[0])
    index = int(spec["index"])
    beat = Heartbeat(int(spec["fd"]))
    beat.start()  # before the app loads: a slow import is not a stuck poll loop

    from tidings.cli.loader import load_app
    from tidings.exceptions import AppLoadError, TidingsError
    from tidings.instrumentation.logs import HANDLER_NAME, configure_logging

    configure_logging(spec["log_level"], spec["log_format"])
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            handler.addFilter(_Prefix(index))
    try:
        app = load_app(spec["app_spec"])
    except AppLoadError as exc:
        log.error("%s", exc)
        return 2
    beat.watch(app.listeners)
    if spec.get("broker") is not None:
        app.close()
        app.broker = spec["broker"]
    if spec.get("grace") is not None:
        app.grace = float(spec["grace"])
    server = None
    http = spec.get("http")
    try:
        if http is not None:
            from tidings.instrumentation.http import start_http

            host, port = http[0], int(http[1])
            groups = list(spec["groups"]) or app.groups()
            server = start_http(app.listeners, groups, host, port + index if port else 0)
        app.run(list(spec["groups"]) or None, instance=str(spec["instance"]))
    except TidingsError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if server is not None:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
