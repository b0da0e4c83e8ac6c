"""A declaration that conflicts with the existing topic is an error before any event is written.

Two apps share one broker: the first creates the topic, the second declares it otherwise.
Settings a declaration leaves out accept what the topic has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tidings import App, ConfigurationError, Event


class DeclTick(Event):
    n: int


@pytest.fixture
def apps(broker_url: str) -> Iterator[tuple[App, App]]:
    first, second = App("first", broker=broker_url), App("second", broker=broker_url)
    try:
        yield first, second
    finally:
        second.close()
        first.close()


def events(app: App, topic: str) -> int:
    info = next(t for t in app.backend.topics() if t.name == topic)
    return sum(e - s for s, e in zip(info.start_offsets, info.end_offsets, strict=True))


def test_another_partition_count_is_refused_before_publishing(
    apps: tuple[App, App], topic_name: str
) -> None:
    first, second = apps
    first.publish(first.topic(topic_name, partitions=3), DeclTick(n=1))
    topic = second.topic(topic_name, partitions=1)
    with pytest.raises(ConfigurationError) as caught:
        second.publish(topic, DeclTick(n=2))
    message = str(caught.value)
    assert f"Topic {topic_name!r} is declared with partitions=1" in message
    assert "has partitions=3" in message
    assert f"tidings topics describe {topic_name}" in message
    with pytest.raises(ConfigurationError):  # every later use too, not only the first
        second.publish(topic, DeclTick(n=3))
    assert events(first, topic_name) == 1


def test_another_partition_count_is_refused_when_consumers_start(
    apps: tuple[App, App], topic_name: str
) -> None:
    first, second = apps
    first.publish(first.topic(topic_name, partitions=2), DeclTick(n=1))

    @second.consumer(second.topic(topic_name, partitions=4), group="g")
    def handle(event: DeclTick) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError, match="declared with partitions=4"):
        second.runner()


def test_retention_conflicts_are_refused_on_local_brokers(
    apps: tuple[App, App], topic_name: str, broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = apps
    first.publish(first.topic(topic_name, retention=timedelta(days=7)), DeclTick(n=1))
    topic = second.topic(topic_name, retention=timedelta(seconds=1))
    if broker_url.startswith("kafka"):
        # Kafka: the topic is left as it is, and the difference is reported.
        with caplog.at_level(logging.WARNING, logger="tidings.kafka"):
            second.publish(topic, DeclTick(n=2))
        (warning,) = [r for r in caplog.records if topic_name in r.getMessage()]
        assert "declared with retention=1s" in warning.getMessage()
        assert "has retention=7d" in warning.getMessage()
        return
    with pytest.raises(ConfigurationError) as caught:
        second.publish(topic, DeclTick(n=2))
    assert "declared with retention=1s" in str(caught.value)
    assert "has retention=7d" in str(caught.value)
    assert events(first, topic_name) == 1


def test_a_retention_on_a_topic_that_has_none_is_a_conflict_too(
    apps: tuple[App, App], topic_name: str, broker_url: str
) -> None:
    if broker_url.startswith("kafka"):
        pytest.skip("a Kafka topic always has a retention (the broker's default)")
    first, second = apps
    first.publish(first.topic(topic_name), DeclTick(n=1))
    with pytest.raises(ConfigurationError, match="has retention=unlimited"):
        second.publish(second.topic(topic_name, retention=timedelta(hours=12)), DeclTick(n=2))


def test_settings_left_out_accept_the_existing_topic(
    apps: tuple[App, App], topic_name: str
) -> None:
    first, second = apps
    first.publish(first.topic(topic_name, partitions=3, retention=timedelta(days=2)), DeclTick(n=1))
    second.publish(second.topic(topic_name), DeclTick(n=2), key="k")

    @second.consumer(topic_name, group="by-name")  # a consumer naming the topic: no conflict
    def handle(event: DeclTick) -> None:
        pass

    second.runner()
    same = App("third", broker=first.broker)
    try:
        same.publish(
            same.topic(topic_name, partitions=3, retention=timedelta(days=2)), DeclTick(n=3)
        )
    finally:
        same.close()
    assert events(first, topic_name) == 3
    (info,) = [t for t in first.backend.topics() if t.name == topic_name]
    assert info.partitions == 3


@pytest.mark.parametrize("retention", [7, 7.0, "7d"])
def test_retention_takes_a_timedelta_not_a_bare_number(retention: object) -> None:
    app = App("decl", broker="memory://decl")
    with pytest.raises(ConfigurationError, match=r"retention takes a datetime.timedelta"):
        app.topic("t", retention=retention)  # type: ignore[arg-type]


@pytest.mark.parametrize("partitions", [0, -1, 2.5, True])
def test_partitions_must_be_a_positive_int(partitions: object) -> None:
    app = App("decl", broker="memory://decl")
    with pytest.raises(ConfigurationError, match="partitions must be an int >= 1"):
        app.topic("t", partitions=partitions)  # type: ignore[arg-type]
