"""The Kafka backend: the only package that imports confluent_kafka."""

from tidings.backends.kafka.backend import KafkaBackend

__all__ = ["KafkaBackend"]
