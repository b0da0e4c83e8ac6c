"""A record too large to dead-letter whole still reaches the dead letters, without its value.

A foreign producer with a larger `message.max.bytes` writes a ~1,040,000-byte record to a
topic that allows 2 MB. tidings' producer (librdkafka's 1,000,000-byte default) cannot copy
it to the dead-letter topic; the dead letter is written without the value, saying why and
where the original is, and the partition moves on in bounded time.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers import wait_until
from tidings import App, Event, Retry
from tidings.backends.kafka import KafkaBackend
from tidings.exceptions import EventTooLarge
from tidings.records import OutgoingRecord, TopicSpec

pytestmark = pytest.mark.kafka


class Upload(Event):
    n: int
    data: str = ""


def committed(app: App, group: str, topic: str) -> int:
    for g in app.backend.groups():
        if g.group == group:
            return sum(p.committed or 0 for p in g.partitions if p.topic == topic)
    return 0


def test_a_record_too_large_to_dead_letter_whole_is_dead_lettered_without_value(
    bootstrap: str, topic_name: str
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    roomy = {"max.message.bytes": "2000000"}
    admin.create_topics([NewTopic(topic_name, 1, 1, config=roomy)])[topic_name].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000})
    reports: list[str] = []
    big = Upload(n=1, data="x" * 1_040_000).model_dump_json().encode()
    for n, payload in ((0, Upload(n=0).model_dump_json().encode()), (1, big)):
        producer.produce(
            topic_name,
            payload,
            b"k",
            headers=[("ce_type", b"Upload"), ("ce_id", f"upload-{n}".encode())],
            on_delivery=lambda err, _: reports.append(str(err)),
        )
        producer.flush(30)
    assert reports == ["None", "None"]

    app = App("uploads", broker=f"kafka://{bootstrap}")
    topic = app.topic(topic_name)
    handled: list[int] = []

    @app.consumer(topic, group="scanner", retry=Retry(attempts=1))
    async def scan(e: Upload) -> None:
        if e.n == 1:
            raise ValueError("virus scanner cannot read uploads over 1 MB")
        handled.append(e.n)

    try:
        with app.running():
            began = time.monotonic()
            wait_until(lambda: committed(app, "scanner", topic_name) == 2, 60, "the big record")
            took = time.monotonic() - began
            app.publish(topic, Upload(n=2), key="k")
            wait_until(lambda: 2 in handled, 30, "the event after it")
        letters = _read(app, f"{topic_name}.scanner.dlq")
    finally:
        app.close()
    assert took < 30, f"the partition was stuck {took:.0f} s behind the big record"
    assert handled == [0, 2]
    (letter,) = letters
    headers = dict(letter.headers)
    assert letter.value is None
    assert headers["tidings-dlq-reason"] == b"handler_error"
    assert b"virus scanner" in headers["tidings-dlq-error-message"]
    dropped = headers["tidings-dlq-value-dropped"].decode()
    assert f"value of {len(big):,} bytes left out" in dropped
    assert "message.max.bytes" in dropped and "client" in dropped
    assert f"{topic_name}[0]@1" in dropped
    assert headers["ce_id"] == b"upload-1"


def _read(app: App, topic: str) -> list[Any]:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list[Any] = []
    for _ in range(50):
        records += reader.fetch(500, 0.1)
        if records:
            break
    reader.close()
    return records


def test_too_large_says_the_client_refused_it_and_which_setting(
    backend: KafkaBackend, topic_name: str
) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    with pytest.raises(EventTooLarge) as raised:
        backend.produce([OutgoingRecord(topic_name, None, b"x" * 1_040_000)])
    message = str(raised.value)
    assert "Broker: Message size too large" not in message
    assert "refused by this client" in message and "message.max.bytes=1000000" in message
