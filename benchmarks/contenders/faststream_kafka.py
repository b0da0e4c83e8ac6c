"""FastStream's aiokafka-based broker (`faststream.kafka`)."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import faststream_peer as fs
from benchmarks.workload import Job

FLAVOR = "kafka"


def publish(job: Job) -> dict[str, Any]:
    return fs.publish(FLAVOR, job)


def consume(job: Job) -> dict[str, Any]:
    return fs.consume(FLAVOR, job)


def latency_consume(job: Job) -> dict[str, Any]:
    return fs.latency_consume(FLAVOR, job)


def latency_produce(job: Job) -> dict[str, Any]:
    return fs.latency_produce(FLAVOR, job)
