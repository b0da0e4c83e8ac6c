"""The dashboard is safe by default: read-only, loopback, token for remote actions, no secrets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.dashboard.support import Client, Scenario, start_dashboard, wait_for
from tidings import App, Event
from tidings.dashboard import Dashboard
from tidings.dashboard.views import public_url
from tidings.exceptions import ConfigurationError

ACTION = {"X-Tidings-Action": "1"}


def test_actions_are_refused_without_allow_actions(
    running: Scenario, dashboard: tuple[Dashboard, Client]
) -> None:
    _, client = dashboard
    status, _, body = client.raw(f"/api/groups/{running.group}/replay", method="POST",
                                 headers=ACTION)  # fmt: skip
    assert status == 403
    assert b"--allow-actions" in body
    assert running.handled.count("evil") == 0


def test_actions_need_the_custom_header_and_the_same_origin(running: Scenario) -> None:
    with start_dashboard(running.app, allow_actions=True) as dash:
        client = Client(dash.url.rstrip("/"))
        path = f"/api/groups/{running.group}/replay"
        assert client.raw(path, method="POST")[0] == 403  # a plain cross-site form post
        evil = {**ACTION, "Origin": "http://evil.example"}
        assert client.raw(path, method="POST", headers=evil)[0] == 403
        bad_host = {**ACTION, "Host": "evil.example:80"}  # DNS rebinding
        assert client.raw(path, method="POST", headers=bad_host)[0] == 403
        assert client.raw("/api/overview", headers={"Host": "evil.example"})[0] == 403
        status, _, body = client.raw(path, method="POST", headers=ACTION)
        assert status == 200, body


def test_actions_on_a_non_loopback_address_need_the_token(running: Scenario) -> None:
    with pytest.raises(ConfigurationError, match="needs a token"):
        Dashboard(running.app.backend, host="0.0.0.0", port=0, allow_actions=True)
    with start_dashboard(running.app, host="0.0.0.0", allow_actions=True, token="s3cret") as dash:
        port = dash.server.server_address[1]
        client = Client(f"http://127.0.0.1:{port}")
        path = f"/api/groups/{running.group}/replay"
        assert client.raw(path, method="POST", headers=ACTION)[0] == 401
        wrong = {**ACTION, "Authorization": "Bearer guess"}
        assert client.raw(path, method="POST", headers=wrong)[0] == 401
        right = {**ACTION, "Authorization": "Bearer s3cret"}
        status, _, body = client.raw(path, method="POST", headers=right)
        assert status == 200, body
        for path in ("/", "/api/overview", "/api/topics"):
            assert b"s3cret" not in client.raw(path)[2]


def test_public_url_drops_credentials_and_options() -> None:
    assert (
        public_url("kafka://alice:pw@b1:9092,b2:9092?sasl.password=pw") == "kafka://b1:9092,b2:9092"
    )
    assert public_url("embedded:///var/data?x=1") == "embedded:///var/data"
    assert public_url("memory://name") == "memory://name"


@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_no_credentials_in_any_response(kind: str, tmp_path: Path) -> None:
    secret = f"hunter2-{uuid.uuid4().hex[:6]}"
    if kind == "kafka":
        broker = f"kafka://{require_kafka()}?sasl.password={secret}"
    else:
        broker = f"embedded://{tmp_path}/data?sasl.password={secret}"
    app = App("secrets", broker=broker, status_interval=0.3)
    topic = app.topic(f"s-{uuid.uuid4().hex[:8]}")
    group = f"g-{uuid.uuid4().hex[:8]}"

    @app.consumer(topic, group=group)
    async def handle(event: Event) -> None:
        raise RuntimeError("always")

    try:
        with app.running(), start_dashboard(app) as dash:
            client = Client(dash.url.rstrip("/"))
            wait_for(lambda: client.get("/api/workers")["workers"], what="a worker snapshot")
            paths = ["/", "/static/app.js", "/api/overview", "/api/topics", "/api/workers"]
            paths += [f"/api/dead-letters?group={group}", f"/api/groups/{group}"]
            bodies = [client.raw(p)[2] for p in paths]
            assert all(secret.encode() not in body for body in bodies)
            assert client.get("/api/overview")["broker"].split("://")[0] == kind
    finally:
        app.close()
