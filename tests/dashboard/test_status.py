"""Status snapshots on every backend: what a worker runs now, and ageing out when it stops."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from tests.dashboard.support import DashOrder, wait_for
from tidings import App
from tidings.cli.reader import read_existing
from tidings.dashboard.monitor import StatusFeed
from tidings.runtime import status as st


def _snapshots(app: App) -> list[dict]:
    records = read_existing(app.backend, [st.STATUS_TOPIC])
    return [json.loads(r.value) for r in records if r.value]


def test_snapshots_show_the_running_event_and_a_final_stopped_one(broker_url: str) -> None:
    app = App("status", broker=broker_url, status_interval=0.2, grace=0.2)
    topic = app.topic(f"slow-{uuid.uuid4().hex[:8]}")
    group = f"g-{uuid.uuid4().hex[:8]}"
    release = asyncio.Event()

    @app.consumer(topic, group=group)
    async def slow(event: DashOrder) -> None:
        await release.wait()

    app.publish(topic, DashOrder(order_id="1", note="slow"), key="k-1")
    feed = StatusFeed(app.backend)
    feed.start()
    try:
        with app.running() as runner:
            worker = runner.status.worker if runner.status else ""

            def running_event() -> dict | None:
                for snap in feed.current(time.time()):
                    if snap["worker"] != worker:
                        continue
                    [g] = snap["groups"]
                    events = g["in_flight_events"]
                    if events and events[0]["age"] >= 0.3:
                        return events[0]
                return None

            event = wait_for(running_event, 30, "the slow event in a snapshot")
            assert event["key"] == "k-1" and event["offset"] == 0 and event["topic"] == topic.name
            assert event["running"] == 1
        wait_for(lambda: all(s["worker"] != worker for s in feed.current(time.time())), 30,
                 "the stopped worker to leave the live list")  # fmt: skip
        mine = [s for s in _snapshots(app) if s["worker"] == worker]
        assert mine[-1]["state"] == "stopped"
        assert {"host", "pid", "app", "version", "time", "groups"} <= set(mine[-1])
    finally:
        feed.stop()
        app.close()


def test_a_silent_worker_ages_out() -> None:
    snap = {"worker": "h:1:x", "state": "running", "time": 1000.0, "interval": 5.0}
    assert st.alive(snap, 1010.0)
    assert not st.alive(snap, 1000.0 + st.stale_after(snap) + 1)
    assert not st.alive({**snap, "state": "stopped"}, 1000.5)
