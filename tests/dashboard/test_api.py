"""The dashboard's JSON API on every backend: overview, group, topics, dead letters, workers."""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.dashboard.support import (
    SCRIPT,
    Client,
    DashOrder,
    Scenario,
    start_dashboard,
    wait_for,
)
from tidings import App
from tidings.dashboard import Dashboard

ACTION = {"X-Tidings-Action": "1"}


def _group(client: Client, name: str) -> dict | None:
    doc = client.get("/api/overview")
    return next((g for g in doc["groups"] if g["group"] == name), None)


def test_overview_lists_the_group_with_its_worker(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    row = wait_for(
        lambda: (g := _group(client, running.group)) and g["workers"] and g["lag"] == 0 and g,
        what="the group caught up, with a reporting worker",
    )
    assert row["status"] == "ok"
    assert row["lag"] == 0
    assert row["lag_seconds"] == 0
    assert row["partitions"] >= 2
    doc = client.get("/api/overview")
    assert any(running.group in w["groups"] for w in doc["workers"])
    assert doc["actions"] is False


def test_group_page_shows_partitions_owners_and_worker_counts(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    doc = wait_for(
        lambda: (
            (d := client.get(f"/api/groups/{running.group}"))
            and d["worker_details"]
            and d["worker_details"][0]["handled"] >= 3
            and d["worker_details"][0]["dead_lettered"] == 1
            and d
        ),
        what="the group's worker with its counts",
    )
    parts = {(p["topic"], p["partition"]): p for p in doc["partitions"]}
    assert {(running.topic, 0), (running.topic, 1)} <= set(parts)
    assert all(
        p["owner"] == doc["worker_details"][0]["worker"]
        for p in parts.values()
        if p["topic"] == running.topic
    )
    assert doc["worker_details"][0]["dead_lettered"] == 1
    status, _, body = client.raw("/api/groups/no-such-group")
    assert status == 404 and b"no-such-group" in body


def test_topics_show_offsets_and_the_pending_delay(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    doc = client.get("/api/topics")
    topic = next(t for t in doc["topics"] if t["name"] == running.topic)
    assert topic["partitions"] == 2
    assert sum(topic["end_offsets"]) == 4
    assert topic["delayed_pending"] == 1
    assert topic["next_due"] is not None
    kinds = {t["name"]: t["kind"] for t in doc["topics"]}
    assert kinds[f"{running.topic}.{running.group}.dlq"] == "dlq"


def test_dead_letters_list_and_detail(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    doc = wait_for(
        lambda: (d := client.get(f"/api/dead-letters?group={running.group}"))["dead_letters"] and d,
        what="the dead letter",
    )
    assert running.group in doc["groups"]
    [row] = doc["dead_letters"]
    assert row["reason"] == "handler_error"
    assert row["error_type"].endswith("Refused")
    assert "order evil" in row["error"]
    assert row["attempts"] == 1
    assert row["topic"] == running.topic
    assert row["status"] == "pending"
    letter = client.get(f"/api/dead-letters/{row['id']}")
    assert letter["value"]["note"] == SCRIPT
    assert letter["key"] == "evil"
    assert any(k == "tidings-dlq-reason" for k, _ in letter["headers"])
    assert client.raw("/api/dead-letters/nope/0/0")[0] == 404


def test_workers_endpoint_returns_live_snapshots(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    doc = wait_for(lambda: client.get("/api/workers")["workers"], what="a worker snapshot")
    mine = [w for w in doc if any(g["group"] == running.group for g in w["groups"])]
    assert mine and mine[0]["state"] == "running" and mine[0]["app"] == "dash"


def test_pause_and_resume_a_group_from_the_dashboard(running: Scenario) -> None:
    with start_dashboard(running.app, allow_actions=True) as dash:
        client = Client(dash.url.rstrip("/"))
        path = f"/api/groups/{running.group}"
        status, _, body = client.raw(path + "/pause", method="POST", headers=ACTION)
        assert status == 200, body
        wait_for(
            lambda: (d := client.get(path))["paused"] and d["status"] == "stopped",
            30,
            "the group to report itself paused",
        )
        running.app.publish(running.topic, DashOrder(order_id="while-paused", note="x"), key="p")
        time.sleep(1.5)  # long enough for a flowing group to take it (it takes ~10 ms)
        assert "while-paused" not in running.handled
        status, _, body = client.raw(path + "/resume", method="POST", headers=ACTION)
        assert status == 200, body
        wait_for(lambda: "while-paused" in running.handled, 30, "the event after resuming")
        wait_for(lambda: not client.get(path)["paused"], 30, "the group to report itself flowing")


def test_a_stuck_handler_shows_as_stalled_with_lag_in_seconds(broker_url: str) -> None:
    app = App("stuck", broker=broker_url, status_interval=0.3, grace=0.2)
    topic = app.topic(f"stuck-{uuid.uuid4().hex[:8]}")
    group = f"g-{uuid.uuid4().hex[:8]}"
    never = asyncio.Event()

    @app.consumer(topic, group=group)
    async def stuck(event: DashOrder) -> None:
        await never.wait()

    for i in range(3):
        app.publish(topic, DashOrder(order_id=str(i), note="x"), key="same-key")
    try:
        with app.running(), start_dashboard(app) as dash:
            client = Client(dash.url.rstrip("/"))
            row = wait_for(
                lambda: (g := _group(client, group)) and g["status"] == "stalled" and g,
                60,
                "the group to be judged stalled",
            )
            assert row["lag"] == 3
            assert row["lag_seconds"] > 0.5
            doc = client.get(f"/api/groups/{group}")
            [worker] = doc["worker_details"]
            [event] = worker["in_flight_events"]
            assert event["key"] == "same-key" and event["offset"] == 0 and event["running"] == 1
            assert event["age"] > 0.5
    finally:
        app.close()
