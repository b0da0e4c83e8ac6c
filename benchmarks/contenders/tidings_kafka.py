"""tidings on Apache Kafka (the confluent-kafka backend)."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import tidings_app as t
from benchmarks.workload import Job


def url(job: Job) -> str:
    return f"kafka://{job.bootstrap}"


def publish(job: Job) -> dict[str, Any]:
    return t.publish(url(job), job)


def publish_single(job: Job) -> dict[str, Any]:
    return t.publish_single(url(job), job)


def consume(job: Job) -> dict[str, Any]:
    return t.consume(url(job), job)


def latency_consume(job: Job) -> dict[str, Any]:
    return t.latency_consume(url(job), job)


def latency_produce(job: Job) -> dict[str, Any]:
    return t.latency_produce(url(job), job)


def delay_consume(job: Job) -> dict[str, Any]:
    return t.delay_consume(url(job), job)


def delay_produce(job: Job) -> dict[str, Any]:
    return t.latency_produce(url(job), job)


def concurrency(job: Job) -> dict[str, Any]:
    return t.concurrency(url(job), job)
