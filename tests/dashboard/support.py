"""Helpers of the dashboard tests: a small system with a dead letter and a pending delay."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidings import App, Event
from tidings.dashboard import Dashboard

SCRIPT = "<script>window.__pwned = 1</script>"


class DashOrder(Event):
    order_id: str
    note: str


class Refused(Exception):
    """The handler refuses notes it cannot print (until fixed)."""


@dataclass
class Scenario:
    app: App
    topic: str
    group: str
    handled: list[str] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=lambda: [False])


@dataclass
class Client:
    base: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as res:
            return json.loads(res.read())

    def raw(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None):
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, dict(res.headers), res.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_dashboard(app: App, **options: Any) -> Dashboard:
    options.setdefault("port", 0)
    dash = Dashboard(app.backend, interval=0.3, **options)
    dash.start()
    return dash
