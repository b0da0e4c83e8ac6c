"""Configuration pass-through and bounded failure when no broker answers."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tidings.backends.kafka import KafkaBackend
from tidings.backends.kafka.config import load_settings
from tidings.exceptions import (
    BrokerUnavailable,
    ConfigurationError,
    DeliveryUncertain,
    EventTooLarge,
)
from tidings.records import OutgoingRecord, TopicSpec

pytestmark = pytest.mark.kafka

NOWHERE = "127.0.0.1:1"


def test_properties_pass_through_from_options_and_environment(
    bootstrap: str, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_KAFKA_SOCKET_KEEPALIVE_ENABLE", "true")
    monkeypatch.setenv("TIDINGS_KAFKA_PORT", "9092")  # scripts/kafka's, not librdkafka's
    settings = load_settings(bootstrap, {"config": {"client.id": "x"}, "statistics_interval_ms": 0})
    assert settings.common == {
        "socket.keepalive.enable": "true",
        "client.id": "x",
        "statistics.interval.ms": 0,
    }
    both = load_settings(bootstrap, {"linger_ms": 1, "config": {"linger.ms": 9}}, environ={})
    assert both.producer_config()["linger.ms"] == 1  # keywords win over config={...}
    b = KafkaBackend(bootstrap, url=f"kafka://{bootstrap}", config={"client.id": "x"}, linger_ms=1)
    try:
        assert b.settings.producer_config()["linger.ms"] == 1
        assert b.settings.producer_config()["enable.idempotence"] is True
        b.ensure_topics([TopicSpec(topic_name)])
        b.produce([OutgoingRecord(topic_name, b"k", b"v")])
    finally:
        b.close()


@pytest.mark.parametrize(
    ("options", "env", "named"),
    [
        ({"config": {"no.such.property": 1}}, {}, "no.such.property"),
        ({"no_such_property": 1}, {}, "option no_such_property="),
        ({"acks": "sometimes"}, {}, "acks"),
        ({}, {"TIDINGS_KAFKA_NO_SUCH_PROPERTY": "1"}, "TIDINGS_KAFKA_NO_SUCH_PROPERTY"),
        ({"connect_timeout": 0}, {}, "connect_timeout"),
    ],
)
def test_bad_properties_are_configuration_errors_naming_them(
    bootstrap: str,
    options: dict[str, object],
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        KafkaBackend(bootstrap, url=f"kafka://{bootstrap}", **options)


def test_bad_consumer_property_fails_at_open(bootstrap: str, topic_name: str) -> None:
    b = KafkaBackend(
        bootstrap, url=f"kafka://{bootstrap}", consumer_config={"session.timeout.ms": "soon"}
    )
    try:
        b.ensure_topics([TopicSpec(topic_name)])
        with pytest.raises(ConfigurationError, match=r"session\.timeout\.ms"):
            b.open_consumer("g", [topic_name], start="earliest", listener=None)
    finally:
        b.close()


def test_unreachable_broker_fails_within_the_bound(bootstrap: str) -> None:
    b = KafkaBackend(NOWHERE, url=f"kafka://{NOWHERE}", connect_timeout=1.5)
    try:
        for attempt in (
            lambda: b.produce([OutgoingRecord("t", None, b"v")]),
            lambda: b.open_consumer("g", ["t"], start="earliest", listener=None),
            lambda: b.ensure_topics([TopicSpec("t", retention=timedelta(days=1))]),
            b.topics,
            b.groups,
        ):
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1.*scripts/kafka start"):
                attempt()
            assert time.monotonic() - started < 1.5 + 2.0
    finally:
        b.close()


def test_topic_retention_is_set_and_reported(backend: KafkaBackend, topic_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name, partitions=2, retention=timedelta(hours=5))])
    with pytest.raises(ConfigurationError, match="declared with partitions=9"):
        backend.ensure_topics([TopicSpec(topic_name, partitions=9)])  # never repartitioned
    info = next(t for t in backend.topics() if t.name == topic_name)
    assert (info.partitions, info.retention) == (2, 5 * 3600)


def test_oversize_record_is_refused_by_name(backend: KafkaBackend, topic_name: str) -> None:
    backend.ensure_topics([TopicSpec(topic_name)])
    records = [
        OutgoingRecord(topic_name, None, b"small"),
        OutgoingRecord(topic_name, None, b"x" * 2_000_000),
    ]
    with pytest.raises(
        EventTooLarge, match=r"2,000,000 bytes; this client.s limit is message\.max\.bytes=1000000"
    ):
        backend.produce(records)


def test_unacknowledged_records_raise_delivery_uncertain(bootstrap: str, topic_name: str) -> None:
    b = KafkaBackend(
        bootstrap, url=f"kafka://{bootstrap}", delays=False, delivery_timeout=0.001, linger_ms=0
    )
    try:
        b.ensure_topics([TopicSpec(topic_name)])
        with pytest.raises(DeliveryUncertain, match="_MSG_TIMED_OUT"):
            b.produce([OutgoingRecord(topic_name, None, b"x" * 100_000) for _ in range(300)])
    finally:
        b.close()
