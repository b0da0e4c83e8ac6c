"""Versioned events on every backend: retained v1 events reach a v2 consumer upcast, and a
v3 event (newer than the consumer) goes to the dead-letter topic with a reason that says
to deploy the consumer first."""

from __future__ import annotations

import threading
from typing import Any

from tests.helpers import wait_until
from tidings import App, Context, Event, upcaster
from tidings.records import OutgoingRecord
from tidings.wire import ce_headers, new_event_id, version_uri


class UpcastBanned(Event, version=2):
    account_id: str
    reason: str
    severity: int


@upcaster(UpcastBanned, from_version=1)
def _severity_from_reason(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "severity": 3 if payload["reason"] == "fraud" else 1}


def old_record(topic: str, key: str, value: bytes, version: int) -> OutgoingRecord:
    """What another deployment put on the wire: no ce_dataschema at v1, the URI at v3."""
    schema = version_uri("UpcastBanned", version)
    headers = ce_headers(
        new_event_id().encode(), b"old", b"UpcastBanned", b"2026-01-01T00:00:00.000Z", schema
    )
    return OutgoingRecord(topic, key.encode(), value, headers)


def lag(app: App, group: str, topic: str) -> int:
    for g in app.backend.groups():
        if g.group == group:
            return sum(p.lag for p in g.partitions if p.topic == topic)
    return -1


def read_all(app: App, topic: str, expect: int) -> list[Any]:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list[Any] = []
    for _ in range(200):
        records += reader.fetch(500, 0.1)
        if len(records) >= expect:
            break
    reader.close()
    return records


def test_v1_events_are_upcast_and_a_v3_event_is_dead_lettered(
    broker_url: str, topic_name: str
) -> None:
    app = App("versions", broker=broker_url)
    try:
        topic = app.topic(topic_name, partitions=2)
        # Retained from the v1 deployment, before this consumer existed.
        app.backend.produce(
            [
                old_record(topic_name, "a", b'{"account_id": "a", "reason": "fraud"}', 1),
                old_record(topic_name, "b", b'{"account_id": "b", "reason": "spam"}', 1),
                old_record(
                    topic_name, "c", b'{"account_id": "c", "reason": "x", "severity": 9}', 3
                ),
            ]
        )
        app.publish(topic, UpcastBanned(account_id="d", reason="spam", severity=2), key="d")
        fast_group, slow_group = f"fast-{topic_name}", f"slow-{topic_name}"
        seen: dict[str, list[UpcastBanned]] = {fast_group: [], slow_group: []}
        lock = threading.Lock()

        @app.consumer(topic, group=fast_group)
        async def fast(event: UpcastBanned) -> None:  # the inlined fast path
            with lock:
                seen[fast_group].append(event)

        @app.consumer(topic, group=slow_group)
        def slow(event: UpcastBanned, ctx: Context) -> None:  # the general path
            with lock:
                seen[slow_group].append(event)

        with app.running():
            wait_until(
                lambda: (
                    lag(app, fast_group, topic_name) == 0 and lag(app, slow_group, topic_name) == 0
                ),
                60,
                "both groups to drain",
            )
        for group in (fast_group, slow_group):
            got = sorted((e.account_id, e.severity) for e in seen[group])
            assert got == [("a", 3), ("b", 1), ("d", 2)], group
            (letter,) = read_all(app, f"{topic_name}.{group}.dlq", 1)
            assert letter.key == b"c"
            headers = dict(letter.headers)
            assert headers["tidings-dlq-reason"] == b"version_too_new"
            message = headers["tidings-dlq-error-message"].decode()
            assert "version 3 is newer than this consumer's 2; deploy the consumer first" in (
                message
            )
    finally:
        app.close()


class ReplayBanned(Event, version=2):
    account_id: str
    banned_by: str


def test_a_replayed_dead_letter_is_upcast_by_the_fixed_consumer(
    broker_url: str, topic_name: str
) -> None:
    """Replay re-publishes the original bytes and headers, so the consumer upcasts them."""
    from typer.testing import CliRunner

    from tidings.cli import app as cli
    from tidings.upcasting import _UPCASTERS

    app = App("versions-replay", broker=broker_url)
    group = f"g-{topic_name}"
    got: list[ReplayBanned] = []
    try:
        topic = app.topic(topic_name)
        headers = ce_headers(b"r1", b"old", b"ReplayBanned", b"2026-01-01T00:00:00.000Z")
        app.backend.produce([OutgoingRecord(topic_name, b"a", b'{"account_id": "a"}', headers)])

        @app.consumer(topic, group=group)
        def handle(event: ReplayBanned) -> None:
            got.append(event)

        with app.running():
            wait_until(lambda: lag(app, group, topic_name) == 0, 60, "the first pass")
        (letter,) = read_all(app, f"{topic_name}.{group}.dlq", 1)
        assert dict(letter.headers)["tidings-dlq-reason"] == b"no_upcaster"
        assert got == []

        @upcaster(ReplayBanned, from_version=1)
        def _unknown(payload: dict[str, Any]) -> dict[str, Any]:
            return {**payload, "banned_by": "unknown"}

        result = CliRunner().invoke(
            cli, ["dlq", "replay", "--group", group, "--broker", broker_url]
        )
        assert result.exit_code == 0, result.output
        with app.running():
            wait_until(lambda: bool(got), 60, "the replayed event")
        assert got == [ReplayBanned(account_id="a", banned_by="unknown")]
    finally:
        _UPCASTERS.pop(("ReplayBanned", 1), None)
        app.close()
