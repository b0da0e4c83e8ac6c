"""Fixtures: the small system of `support`, running, with a dashboard on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.dashboard.support import (
    SCRIPT,
    Client,
    DashOrder,
    Refused,
    Scenario,
    start_dashboard,
    wait_for,
)
from tidings import App, Retry
from tidings.dashboard import Dashboard


@pytest.fixture
def scenario(broker_url: str) -> Iterator[Scenario]:
    suffix = uuid.uuid4().hex[:8]
    app = App("dash", broker=broker_url, status_interval=0.5, grace=2.0)
    topic = app.topic(f"orders-{suffix}", partitions=2)
    s = Scenario(app, topic.name, f"billing-{suffix}")

    @app.consumer(topic, group=s.group, retry=Retry(attempts=1))
    async def bill(event: DashOrder) -> None:
        if event.note == SCRIPT and not s.fixed[0]:
            raise Refused(f"cannot print note of order {event.order_id}")
        s.handled.append(event.order_id)

    for i in range(3):
        app.publish(topic, DashOrder(order_id=f"o{i}", note="fine"), key=f"o{i}")
    app.publish(topic, DashOrder(order_id="evil", note=SCRIPT), key="evil")
    app.publish(topic, DashOrder(order_id="later", note="fine"), key="l", delay=timedelta(hours=1))
    try:
        yield s
    finally:
        app.close()


@pytest.fixture
def running(scenario: Scenario) -> Iterator[Scenario]:
    """The scenario's consumers running until the dead letter is written."""
    with scenario.app.running():
        wait_for(lambda: len(scenario.handled) >= 3, what="three orders handled")
        yield scenario


@pytest.fixture
def dashboard(running: Scenario) -> Iterator[tuple[Dashboard, Client]]:
    dash = start_dashboard(running.app)
    try:
        yield dash, Client(dash.url.rstrip("/"))
    finally:
        dash.close()
