"""The contenders by name, and what each takes part in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contender:
    name: str
    module: str
    label: str
    kind: str  # "kafka", "embedded" or "tool"
    single: bool = False  # also publish one event at a time
    latency: bool = False  # takes part in the end-to-end latency run
    consumes: tuple[str, ...] = ("consume",)
    """Consume scenarios run over the published topic, each in a fresh group."""
    publishes: tuple[str, ...] = ("publish",)
    """Publish scenarios; the first fills the topic the consumers read."""


CONTENDERS = {
    c.name: c
    for c in (
        Contender(
            "tidings-kafka",
            "tidings_kafka",
            "tidings · Kafka",
            "kafka",
            True,
            True,
            consumes=("consume", "consume_run"),
        ),
        Contender(
            "tidings-embedded",
            "tidings_embedded",
            "tidings · embedded",
            "embedded",
            True,
            True,
            consumes=("consume", "consume_run", "consume_sqlite"),
        ),
        Contender(
            "raw-confluent",
            "raw_confluent",
            "raw confluent-kafka",
            "kafka",
            True,
            True,
            consumes=("consume", "consume_json"),
            publishes=("publish", "publish_headers"),
        ),
        Contender("aiokafka", "aiokafka_peer", "aiokafka", "kafka", False, True),
        Contender(
            "faststream-kafka", "faststream_kafka", "FastStream · aiokafka", "kafka", False, True
        ),
        Contender(
            "faststream-confluent", "faststream_confluent", "FastStream · confluent", "kafka"
        ),
        Contender("kafka-tools", "kafka_tools", "Kafka perf tools (Java)", "tool"),
    )
}
BASELINE = "raw-confluent"
SCENARIOS = ("throughput", "idle", "latency", "delays", "concurrency", "sqlite", "profile")
