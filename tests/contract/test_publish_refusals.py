"""What publish refuses on every backend, before anything is stored, with an error that says why.

Reserved header names, keys that are not text or bytes, events that cannot be encoded,
negative delays, and topics nobody declared that do not exist.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import wait_until
from tidings import App, ConfigurationError, Context, Event, PublishError
from tidings.exceptions import EncodeError, TopicNotFound
from tidings.records import Record


class Memo(Event):
    n: int


class DeepBlob(Event):
    payload: Any


@pytest.fixture
def app(broker_url: str) -> Iterator[App]:
    app = App("refusals", broker=broker_url)
    try:
        yield app
    finally:
        app.close()


def stored(app: App, topic: str) -> list[Record]:
    """Every record of `topic` (waiting briefly: Kafka's offsets show up after the ack)."""
    info = next((t for t in app.backend.topics() if t.name == topic), None)
    if info is None:
        return []
    total = sum(e - s for s, e in zip(info.start_offsets, info.end_offsets, strict=True))
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    got: list[Record] = []
    try:
        for _ in range(100):
            if len(got) >= total:
                break
            got += reader.fetch(1000, 0.1)
    finally:
        reader.close()
    return got


RESERVED = ["tidings-replay-group", "ce_type", "CE_ID", "Content-Type", "Tidings-Deliver-At"]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_header_names_are_refused_on_publish(app: App, topic_name: str, name: str) -> None:
    topic = app.topic(topic_name)
    with pytest.raises(ConfigurationError, match=f"header {name!r} is reserved"):
        app.publish(topic, Memo(n=1), headers={name: "x"})
    with pytest.raises(ConfigurationError, match=f"header {name!r} is reserved"):
        asyncio.run(app.publish_async(topic, Memo(n=1), headers={name: "x"}))
    assert stored(app, topic_name) == []


def test_ordinary_headers_are_kept(app: App, topic_name: str) -> None:
    topic = app.topic(topic_name)
    app.publish(topic, Memo(n=1), headers={"tenant": "acme", "x-ce_type": "fine"})
    (record,) = stored(app, topic_name)
    assert record.header("tenant") == b"acme"
    assert record.header("x-ce_type") == b"fine"
    assert record.header("ce_type") == b"Memo"


def test_ctx_publish_refuses_reserved_headers_but_carries_correlation(
    app: App, topic_name: str
) -> None:
    topic = app.topic(topic_name)
    follow = app.topic(f"{topic_name}-follow")
    errors: list[BaseException] = []
    done = threading.Event()

    @app.consumer(topic, group="g")
    def handle(event: Memo, ctx: Context) -> None:
        try:
            ctx.publish(follow, Memo(n=2), headers={"ce_source": "spoof"})
        except ConfigurationError as exc:
            errors.append(exc)
        ctx.publish(follow, Memo(n=3), headers={"tenant": "acme"})
        done.set()

    app.publish(topic, Memo(n=1))
    with app.running():
        wait_until(done.is_set, 30, "the handler ran")
    (record,) = stored(app, follow.name)
    assert record.header("tenant") == b"acme"
    assert record.header("tidings-causation-id") is not None
    assert len(errors) == 1
    assert "header 'ce_source' is reserved" in str(errors[0])


def test_header_values_must_be_text(app: App, topic_name: str) -> None:
    topic = app.topic(topic_name)
    with pytest.raises(ConfigurationError, match="header 'n' has a value of type int"):
        app.publish(topic, Memo(n=1), headers={"n": 1})  # type: ignore[dict-item]


def test_keys_may_be_text_or_bytes(app: App, topic_name: str) -> None:
    topic = app.topic(topic_name, partitions=3)
    by_text = app.publish(topic, Memo(n=1), key="42")
    by_bytes = app.publish(topic, Memo(n=2), key=b"42")
    many = app.publish_many(topic, [(b"42", Memo(n=3)), ("42", Memo(n=4))])
    assert {by_text.partition, by_bytes.partition, *(p.partition for p in many)} == {
        by_text.partition
    }
    keys = {r.key for r in stored(app, topic_name)}
    assert keys == {b"42"}


@pytest.mark.parametrize("key", [42, 4.2, ["a"]])
def test_a_key_of_another_type_is_refused_naming_it(app: App, topic_name: str, key: Any) -> None:
    topic = app.topic(topic_name)
    kind = type(key).__name__
    with pytest.raises(ConfigurationError, match=f"key must be str or bytes, not {kind}"):
        app.publish(topic, Memo(n=1), key=key)
    with pytest.raises(ConfigurationError, match=f"key must be str or bytes, not {kind}"):
        app.publish_many(topic, [(key, Memo(n=1))])
    assert stored(app, topic_name) == []


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_an_event_that_cannot_be_encoded_raises_a_tidings_error(app: App, topic_name: str) -> None:
    topic = app.topic(topic_name)
    deep = DeepBlob(payload=nested(100_000))
    with pytest.raises(EncodeError, match="DeepBlob") as caught:
        app.publish(topic, deep)
    assert isinstance(caught.value, PublishError)
    assert "could not be encoded as JSON" in str(caught.value)
    assert "Maximum serialization depth exceeded" in str(caught.value)
    with pytest.raises(EncodeError, match="DeepBlob"):
        app.publish_many(topic, [DeepBlob(payload=1), deep])
    assert stored(app, topic_name) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda app, t: app.publish(t, Memo(n=1), delay=timedelta(seconds=-5)),
        lambda app, t: app.publish_many(t, [Memo(n=1)], delay=timedelta(seconds=-5)),
    ],
)
def test_a_negative_delay_is_refused(
    app: App, topic_name: str, call: Callable[[App, Any], object]
) -> None:
    topic = app.topic(topic_name)
    with pytest.raises(ConfigurationError, match=r"delay= must not be negative \(got -0:00:05\)"):
        call(app, topic)
    assert stored(app, topic_name) == []


def test_a_zero_delay_or_a_past_time_delivers_now(app: App, topic_name: str) -> None:
    topic = app.topic(topic_name)
    now = app.publish(topic, Memo(n=1), delay=timedelta(0))
    past = app.publish(topic, Memo(n=2), at=datetime.now(UTC) - timedelta(hours=1))
    assert now.offset >= 0 and now.deliver_at is None
    assert past.offset >= 0 and past.deliver_at is None


@pytest.mark.parametrize("delayed", [False, True])
def test_publishing_to_a_topic_nobody_declared_that_does_not_exist_raises(
    app: App, topic_name: str, delayed: bool
) -> None:
    app.topic(topic_name)  # another, declared topic: the backend is open and working
    typo = f"{topic_name}-typo"
    delay = timedelta(hours=1) if delayed else None
    with pytest.raises(TopicNotFound, match=f"Topic '{typo}' does not exist") as caught:
        app.publish(typo, Memo(n=1), delay=delay)
    assert f"app.topic('{typo}'" in str(caught.value)
    assert f"tidings topics create {typo}" in str(caught.value)
    with pytest.raises(TopicNotFound):
        app.publish_many(typo, [Memo(n=1)], delay=delay)
    with pytest.raises(TopicNotFound):
        asyncio.run(app.publish_async(typo, Memo(n=1), delay=delay))
    assert typo not in {t.name for t in app.backend.topics()}


def test_publishing_by_name_to_a_topic_that_exists_works_undeclared(
    broker_url: str, topic_name: str
) -> None:
    creator = App("creator", broker=broker_url)
    other = App("other", broker=broker_url)
    try:
        creator.topic(topic_name, partitions=2)
        creator.backend  # noqa: B018 - creates the declared topic
        other.publish(topic_name, Memo(n=1), key="k")
        (record,) = stored(other, topic_name)
        assert record.value == b'{"n":1}'
    finally:
        other.close()
        creator.close()


def test_declared_topics_are_created_on_first_publish(app: App, topic_name: str) -> None:
    app.topic(topic_name, partitions=2)
    app.publish(topic_name, Memo(n=1))
    (info,) = [t for t in app.backend.topics() if t.name == topic_name]
    assert info.partitions == 2
