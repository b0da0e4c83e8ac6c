"""Interoperability with plain Kafka clients, through the CloudEvents binary binding."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import wait_until
from tidings import App, Context, Event
from tidings.partitioner import partition_for

pytestmark = pytest.mark.kafka


class InteropBanned(Event):
    account_id: str
    reason: str


def test_a_plain_consumer_reads_tidings_events(bootstrap: str, topic_name: str) -> None:
    app = App("accounts", broker=f"kafka://{bootstrap}")
    topic = app.topic(topic_name, partitions=3)
    published = app.publish(topic, InteropBanned(account_id="42", reason="fraud"), key="42")
    app.close()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"plain-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic_name])
        msg = None
        for _ in range(100):
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        headers = {k: v.decode() for k, v in msg.headers()}
    finally:
        consumer.close()
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == published.event_id
    assert headers["ce_source"] == "accounts"
    assert headers["ce_type"] == "InteropBanned"
    assert headers["ce_time"].endswith("Z")
    assert headers["content-type"] == "application/json"
    assert msg.key() == b"42"
    assert msg.partition() == published.partition == partition_for(b"42", 3)
    assert json.loads(msg.value()) == {"account_id": "42", "reason": "fraud"}


def test_a_plain_producer_reaches_a_tidings_handler(bootstrap: str, topic_name: str) -> None:
    app = App("payments", broker=f"kafka://{bootstrap}")
    topic = app.topic(topic_name)
    got: list[tuple[InteropBanned, str, str]] = []

    @app.consumer(topic, group=f"g-{topic_name}")
    def handle(e: InteropBanned, ctx: Context) -> None:
        got.append((e, ctx.event_id, ctx.key or ""))

    app.backend  # noqa: B018 - creates the topic
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topic_name,
        key=b"7",
        value=json.dumps({"account_id": "7", "reason": "tos"}).encode(),
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"java-1"),
            ("ce_source", b"legacy-java-service"),
            ("ce_type", b"InteropBanned"),
            ("ce_time", b"2026-11-26T10:00:00Z"),
            ("content-type", b"application/json"),
        ],
    )
    assert producer.flush(10) == 0
    with app.running():
        wait_until(lambda: len(got) == 1, 60, "the handler to receive the plain record")
    assert got == [(InteropBanned(account_id="7", reason="tos"), "java-1", "7")]
    app.close()


def test_a_key_lands_on_the_same_partition_on_both_backends(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    keys = [f"account-{i}" for i in range(40)]
    placements = []
    for url in (f"kafka://{bootstrap}", f"embedded://{tmp_path / 'data'}"):
        app = App("placement", broker=url)
        topic = app.topic(topic_name, partitions=6)
        placements.append(
            [
                p.partition
                for p in app.publish_many(
                    topic, [(k, InteropBanned(account_id=k, reason="x")) for k in keys]
                )
            ]
        )
        app.close()
    assert placements[0] == placements[1] == [partition_for(k.encode(), 6) for k in keys]
