"""Helpers for the outbox tests: brokers, an event type, and reading a topic back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tidings import App, Event
from tidings.backends.base import Backend
from tidings.records import Record

BROKERS = ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)]


class Booked(Event):
    key: str
    seq: int


def broker_for(kind: str, tmp_path: Path) -> str:
    return f"kafka://{require_kafka()}" if kind == "kafka" else f"embedded://{tmp_path / 'data'}"


def read_topic(backend: Backend, topic: str, count: int, timeout: float = 30.0) -> list[Record]:
    """Read `topic` from the beginning until `count` records arrived (or `timeout`), then
    wait a little longer for any extra (so "exactly" can be asserted)."""
    consumer = backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list[Record] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            records.extend(consumer.fetch(1000, 0.2))
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            records.extend(consumer.fetch(1000, 0.1))
    finally:
        consumer.close()
    return records


def seqs(records: list[Record]) -> list[int]:
    return [Booked.model_validate_json(r.value or b"").seq for r in records]


def new_app(url: str, topic: str, partitions: int = 3) -> tuple[App, object]:
    app = App("outbox-test", broker=url)
    return app, app.topic(topic, partitions=partitions)
