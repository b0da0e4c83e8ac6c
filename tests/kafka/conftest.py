"""Fixtures for tests that need a real Kafka broker (each one skips, or fails under CI, without)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import drop_kafka_topics, require_kafka
from tidings.backends.kafka import KafkaBackend
from tidings.records import TopicPartition

# Faster group joins and rebalances than librdkafka's defaults, for tests only.
FAST_GROUPS = {"heartbeat.interval.ms": 300, "session.timeout.ms": 6000}


@pytest.fixture
def bootstrap() -> str:
    return require_kafka()


@pytest.fixture
def backend(bootstrap: str) -> Iterator[KafkaBackend]:
    """A backend without the delay scheduler (see `delay_backend`)."""
    b = KafkaBackend(
        bootstrap, url=f"kafka://{bootstrap}", consumer_config=FAST_GROUPS, delays=False
    )
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def delay_namespace() -> Iterator[str]:
    """Delay topics and a scheduler group of this test's own (other test runs share the broker)."""
    namespace = f"test{uuid.uuid4().hex[:8]}"
    yield namespace
    drop_kafka_topics(f"tidings.delay.{namespace}.")


def open_delay_backend(bootstrap: str, namespace: str) -> KafkaBackend:
    return KafkaBackend(
        bootstrap,
        url=f"kafka://{bootstrap}",
        consumer_config=FAST_GROUPS,
        delay_namespace=namespace,
    )


@pytest.fixture
def group_name() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


class Recorder:
    """A RebalanceListener that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[TopicPartition]]] = []

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("assigned", list(partitions)))

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("revoked", list(partitions)))
