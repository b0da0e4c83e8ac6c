"""The dashboard's HTTP server: a static page and a small JSON API (stdlib only).

Why the stdlib (`http.server.ThreadingHTTPServer`) and a vanilla-JS page: the dashboard
serves a handful of JSON documents to a few operators, polled every two seconds; that needs
no framework, no new dependency, no build step and nothing fetched from a CDN.

Safety:
- it binds to loopback unless told otherwise, and checks the Host header there (a web page
  elsewhere cannot reach it through DNS rebinding);
- it is read-only unless started with ``allow_actions`` (replay a group's dead letters,
  pause or resume a group through `tidings.runtime.control`); actions are POSTs that need the
  ``X-Tidings-Action`` header (a cross-site form or fetch cannot send it without a preflight,
  which is never granted) and, when an Origin header is sent, the dashboard's own origin;
- on a non-loopback address, actions need the token (``Authorization: Bearer TOKEN``);
- every action is logged with the client's address and what it did;
- pages allow only their own scripts (Content-Security-Policy), and the page builds its DOM
  with textContent, so event values render as text.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tidings.backends.base import Backend
from tidings.dashboard import views
from tidings.dashboard.monitor import Monitor, Sample
from tidings.exceptions import ConfigurationError
from tidings.runtime.control import CONTROL_SPEC, control_record

log = logging.getLogger("tidings.dashboard")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ACTION_HEADER = "X-Tidings-Action"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_NAME = r"[A-Za-z0-9._-]{1,249}"
_GROUP = re.compile(rf"^/api/groups/({_NAME})$")
_ACTION = re.compile(rf"^/api/groups/({_NAME})/(replay|pause|resume)$")
_LETTER = re.compile(rf"^/api/dead-letters/({_NAME})/(\d+)/(\d+)$")


def is_loopback(host: str) -> bool:
    """Return whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:PORT`` for IPv6; a bare port means loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError(
            f"--http {text!r} is not HOST:PORT with a port from 0 to 65535; "
            f"for example --http {DEFAULT_HOST}:{DEFAULT_PORT}."
        )
    return host, int(port)


class Dashboard:
    """The monitor, the dead letters and the HTTP server, started and stopped together."""

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allow_actions: bool = False,
        token: str | None = None,
        interval: float = 2.0,
    ) -> None:
        self.loopback = is_loopback(host)
        if allow_actions and not self.loopback and not token:
            raise ConfigurationError(
                f"--allow-actions on {host} (not a loopback address) needs a token: pass "
                "--token TOKEN or set TIDINGS_DASHBOARD_TOKEN, or bind to 127.0.0.1."
            )
        self.backend = backend
        self.allow_actions = allow_actions
        self.token = token
        self.monitor = Monitor(backend, interval=interval)
        self._overview: tuple[Sample, bytes] | None = None
        self.monitor.on_sample.append(self._render_overview)
        self.dead_letters = views.DeadLetters(backend, self.monitor)
        self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _render_overview(self, sample: Sample) -> None:
        """Encode the overview once per sample (requests then only send bytes)."""
        doc = views.overview(sample, self.backend.url, self.allow_actions)
        self._overview = (sample, json.dumps(doc, separators=(",", ":")).encode())

    def overview_json(self) -> bytes:
        sample = self.monitor.latest()
        cached = self._overview
        if cached is None or cached[0] is not sample:
            self._render_overview(sample)
            cached = self._overview
            assert cached is not None
        return cached[1]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def start(self) -> None:
        """Start sampling and serving in background threads."""
        self.monitor.start()
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="tidings-dashboard", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        self.monitor.start()
        self.server.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()
        self.monitor.stop()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(dash: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        dashboard = dash

    return Handler


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard
    server_version = "tidings-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    # -- responses ---------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        """On loopback, only loopback Host names (a defence against DNS rebinding)."""
        if not self.dashboard.loopback:
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name.strip("[]"))

    # -- GET ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "Host header is not a loopback name")
            return
        url = urlsplit(self.path)
        path = url.path
        static = STATIC.get(path)
        if static is not None:
            body = resources.files("tidings.dashboard").joinpath("static", static[0])
            self._send(HTTPStatus.OK, body.read_bytes(), static[1])
            return
        if not path.startswith("/api/"):
            self._error(HTTPStatus.NOT_FOUND, f"no page {path}")
            return
        try:
            self._api(path, parse_qs(url.query))
        except Exception as exc:
            log.warning("dashboard: GET %s failed: %r", path, exc)
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"{type(exc).__name__}: {exc}")

    def _api(self, path: str, query: dict[str, list[str]]) -> None:
        dash = self.dashboard
        if path == "/api/overview":
            self._send(HTTPStatus.OK, dash.overview_json(), "application/json")
        elif path == "/api/topics":
            self._json(HTTPStatus.OK, views.topics(dash.monitor.latest()))
        elif path == "/api/workers":
            self._json(HTTPStatus.OK, {"workers": dash.monitor.latest().workers})
        elif path == "/api/dead-letters":
            group = query["group"][0] if query.get("group") else None
            self._json(HTTPStatus.OK, dash.dead_letters.listing(group))
        elif m := _GROUP.match(path):
            doc = views.group(dash.monitor.latest(), m.group(1))
            if doc is None:
                self._error(HTTPStatus.NOT_FOUND, f"no consumer group {m.group(1)!r}")
            else:
                self._json(HTTPStatus.OK, doc)
        elif m := _LETTER.match(path):
            letter = dash.dead_letters.detail(m.group(1), int(m.group(2)), int(m.group(3)))
            if letter is None:
                self._error(HTTPStatus.NOT_FOUND, f"no dead letter at {path[18:]}")
            else:
                self._json(HTTPStatus.OK, letter)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no API {path}")

    do_HEAD = do_GET

    # -- POST (actions) ----------------------------------------------------------------

    def do_POST(self) -> None:
        dash = self.dashboard
        client = self.client_address[0]
        path = urlsplit(self.path).path
        refusal = self._refusal()
        if refusal is not None:
            status, why = refusal
            log.warning("dashboard: refused POST %s from %s: %s", path, client, why)
            self._error(status, why)
            return
        m = _ACTION.match(path)
        if m is None:
            self._error(HTTPStatus.NOT_FOUND, f"no action {path}")
            return
        group, action = m.group(1), m.group(2)
        try:
            if action == "replay":
                result: dict[str, Any] = {"replayed": dash.dead_letters.replay(group)}
            else:
                paused = action == "pause"
                dash.backend.ensure_topics([CONTROL_SPEC])
                dash.backend.produce([control_record(group, paused=paused, by=client)])
                result = {"paused": paused}
        except Exception as exc:
            log.warning("dashboard: %s of group %s from %s failed: %r", action, group, client, exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            return
        log.warning("dashboard action from %s: %s group %s -> %s", client, action, group, result)
        self._json(HTTPStatus.OK, {"group": group, "action": action, **result})

    def _refusal(self) -> tuple[HTTPStatus, str] | None:
        dash = self.dashboard
        if not dash.allow_actions:
            return (
                HTTPStatus.FORBIDDEN,
                "actions are off: start the dashboard with --allow-actions to enable them",
            )
        if not self._host_ok():
            return HTTPStatus.FORBIDDEN, "Host header is not a loopback name"
        if self.headers.get(ACTION_HEADER) != "1":
            return HTTPStatus.FORBIDDEN, f"actions need the {ACTION_HEADER}: 1 header"
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            return HTTPStatus.FORBIDDEN, "cross-origin action refused"
        if dash.token is not None:
            sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), dash.token.encode()):
                return HTTPStatus.UNAUTHORIZED, "actions need the dashboard token"
        return None
