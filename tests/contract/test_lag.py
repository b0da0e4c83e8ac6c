"""Consumer lag in seconds and the group status, judged in the worker process, on every
backend: in metrics and in `tidings groups describe --json`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.helpers import wait_until
from tidings import App, Event
from tidings.cli import app as cli_app
from tidings.instrumentation.metrics import Metrics, install

INTERVAL = 0.2
"""status_interval for these tests: a status is judged over the last 6 samples (~2.4 s)."""


class LagJob(Event):
    n: int


def gauges(metrics: Metrics, name: str, group: str) -> dict[tuple[str, ...], float]:
    """The samples of gauge `name` for `group`, by their other label values."""
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels.get("group") == group:
                rest = tuple(v for k, v in sorted(s.labels.items()) if k != "group")
                out[rest] = s.value
    return out


def status(metrics: Metrics, group: str) -> str | None:
    on = [k[0] for k, v in gauges(metrics, "tidings_consumer_group_status", group).items() if v]
    return on[0] if on else None


def describe(broker: str, group: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli_app, ["groups", "describe", group, "--json", "--broker", broker]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@contextlib.contextmanager
def releasing(release: threading.Event) -> Iterator[None]:
    """Unblock the handler on the way out (else leaving `running()` waits its grace)."""
    try:
        yield
    finally:
        release.set()


def blocked_app(broker: str, topic_name: str) -> tuple[App, threading.Event, threading.Event]:
    app = App("lagged", broker=broker, status_interval=INTERVAL)
    topic = app.topic(topic_name)
    started, release = threading.Event(), threading.Event()

    @app.consumer(topic, group="slow")
    async def handler(e: LagJob) -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.02)

    return app, started, release


def test_lag_seconds_grow_while_a_handler_is_blocked_and_are_0_after(
    broker_url: str, topic_name: str
) -> None:
    app, started, release = blocked_app(broker_url, topic_name)
    metrics = install(app.listeners)
    try:
        with app.running(), releasing(release):
            app.publish_many(topic_name, [LagJob(n=i) for i in range(10)])
            wait_until(started.is_set, 30, "the handler started")

            def behind() -> bool:
                ages = gauges(metrics, "tidings_consumer_lag_seconds", "slow")
                lags = gauges(metrics, "tidings_consumer_lag_messages", "slow")
                return lags.get(("0", topic_name)) == 10 and ages.get(("0", topic_name), 0) > 0.3

            wait_until(behind, 30, "lag 10 events, older than 0.3 s, in the metrics")
            view = describe(broker_url, "slow")
            assert view["lag"] == 10
            assert view["lag_seconds"] > 0.3
            assert view["partitions"][0]["lag_seconds"] > 0.3
            release.set()

            def caught_up() -> bool:
                ages = gauges(metrics, "tidings_consumer_lag_seconds", "slow")
                lags = gauges(metrics, "tidings_consumer_lag_messages", "slow")
                return lags.get(("0", topic_name)) == 0 and ages.get(("0", topic_name)) == 0

            wait_until(caught_up, 30, "lag 0 events and 0 s in the metrics")
            view = describe(broker_url, "slow")
            assert (view["lag"], view["lag_seconds"]) == (0, 0)
    finally:
        release.set()
        app.close()


def test_a_group_that_stops_committing_turns_stalled_then_ok(
    broker_url: str, topic_name: str
) -> None:
    app, started, release = blocked_app(broker_url, topic_name)
    metrics = install(app.listeners)
    try:
        with app.running(), releasing(release):
            wait_until(lambda: status(metrics, "slow") == "ok", 30, "status ok while idle")
            app.publish_many(topic_name, [LagJob(n=i) for i in range(3)])
            wait_until(started.is_set, 30, "the handler started")
            wait_until(lambda: status(metrics, "slow") == "stalled", 30, "status stalled")
            view = describe(broker_url, "slow")
            assert view["status"] == "stalled"
            assert view["partitions"][0]["status"] == "stalled"
            release.set()
            wait_until(lambda: status(metrics, "slow") == "ok", 30, "status ok again")
            wait_until(lambda: describe(broker_url, "slow")["status"] == "ok", 30, "describe ok")
    finally:
        release.set()
        app.close()


def test_the_broker_describes_only_the_groups_asked_for(broker_url: str, topic_name: str) -> None:
    """Each worker samples its own groups' lag: the broker must not describe every group."""
    app = App("lagged", broker=broker_url, status_interval=None)
    topic = app.topic(topic_name)
    seen: list[str] = []

    @app.consumer(topic, group="asked")
    async def asked(e: LagJob) -> None:
        seen.append("asked")

    @app.consumer(topic, group="other")
    async def other(e: LagJob) -> None:
        seen.append("other")

    try:
        with app.running():
            app.publish(topic, LagJob(n=1))
            wait_until(lambda: len(seen) == 2, 30, "both groups handled the event")
            backend = app.backend
            wait_until(
                lambda: {g.group for g in backend.groups()} >= {"asked", "other"},
                30,
                "both groups known to the broker",
            )
            assert [g.group for g in backend.groups(["asked", "missing"])] == ["asked"]
    finally:
        app.close()
