"""`tidings run --http HOST:PORT`: /metrics, /livez and /readyz from the worker process.

A stdlib ThreadingHTTPServer in a daemon thread; it reads the catalogue's listeners and the
workers' health views, never the event loop, so a busy handler does not slow a probe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tidings.exceptions import ConfigurationError
from tidings.instrumentation.catalogue import WorkerStarted, WorkerStopping, WorkerView
from tidings.instrumentation.dispatch import Listeners

log = logging.getLogger("tidings.http")

LIVENESS_LIMIT = 60.0
"""/livez answers 503 once a group's poll loop has not turned for this many seconds."""


class Health:
    """Liveness and readiness of the groups this process runs, from the catalogue."""

    def __init__(self, listeners: Listeners, groups: Sequence[str]) -> None:
        self.groups = list(groups)
        self.limit = LIVENESS_LIMIT
        self._workers: dict[str, WorkerView] = {}
        self._stopping = False
        listeners.on(WorkerStarted, self._started)
        listeners.on(WorkerStopping, self._stop)

    def _started(self, e: WorkerStarted) -> None:
        self._workers[e.group] = e.worker

    def _stop(self, e: WorkerStopping) -> None:
        self._stopping = True

    def live(self) -> tuple[bool, str]:
        """Alive unless a consumer failed or a poll loop stopped turning (busy is alive)."""
        for group, worker in list(self._workers.items()):
            if worker.error is not None:
                return False, f"group {group}: consumer failed: {worker.error}"
            idle = worker.seconds_since_poll()
            if not self._stopping and idle > self.limit:
                return False, (
                    f"group {group}: poll loop has not turned for {idle:.0f} s "
                    f"(limit {self.limit:.0f} s)"
                )
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready once every group joined (partitions assigned once); not while stopping."""
        if self._stopping:
            return False, "shutting down"
        for group in self.groups:
            worker = self._workers.get(group)
            if worker is None:
                return False, f"group {group}: not started"
            if worker.error is not None:
                return False, f"group {group}: consumer failed: {worker.error}"
            if not worker.joined:
                return False, f"group {group}: not joined yet"
        return True, "ok"


class HttpServer:
    """The running endpoint server; `close()` stops it."""

    def __init__(
        self, server: ThreadingHTTPServer, thread: threading.Thread, health: Health, metrics: Any
    ) -> None:
        self.server = server
        self.thread = thread
        self.health = health
        self.metrics = metrics

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_http(listeners: Listeners, groups: Sequence[str], host: str, port: int) -> HttpServer:
    """Serve /metrics, /livez and /readyz on host:port (port 0: any free port).

    Raises:
        ConfigurationError: prometheus-client is not installed, or the address is taken.
    """
    from tidings.instrumentation import metrics as metrics_module

    metrics = metrics_module.install(listeners)
    health = Health(listeners, groups)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), metrics_module.CONTENT_TYPE)
            elif path in ("/livez", "/readyz"):
                ok, why = health.live() if path == "/livez" else health.ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found: try /metrics, /livez or /readyz\n", "text/plain")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigurationError(
            f"--http {host}:{port}: cannot listen there ({exc.strerror or exc}). Pick a free "
            "port, e.g. --http 127.0.0.1:9400 (127.0.0.1 keeps it off the network)."
        ) from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="tidings-http", daemon=True)
    thread.start()
    log.info("serving /metrics, /livez and /readyz on http://%s:%d", host, server.server_port)
    return HttpServer(server, thread, health, metrics)


def parse_address(text: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 as [::1]:PORT).

    Raises:
        ConfigurationError: not HOST:PORT with a port in 0-65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigurationError(
            f"--http takes HOST:PORT (got {text!r}), e.g. --http 127.0.0.1:9400; bind to "
            "127.0.0.1 unless the metrics must be reachable from other hosts."
        )
    return host, int(port)
