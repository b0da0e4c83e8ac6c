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


CONTENDERS = {
    c.name: c
    for c in (
        Contender("tidings-kafka", "tidings_kafka", "tidings · Kafka", "kafka", True, True),
        Contender(
            "tidings-embedded", "tidings_embedded", "tidings · embedded", "embedded", True, True
        ),
        Contender("raw-confluent", "raw_confluent", "raw confluent-kafka", "kafka", True, True),
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
SCENARIOS = ("throughput", "latency", "delays", "concurrency", "sqlite", "profile")
