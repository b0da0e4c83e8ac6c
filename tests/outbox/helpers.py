"""Helpers for the outbox tests: brokers, an event type, and reading a topic back."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.outbox.outbox_app import Booked
from tidings.backends.base import Backend
from tidings.records import Record

__all__ = ["BROKERS", "Booked", "broker_for", "proc_env", "read_topic", "seqs", "tidings"]

BROKERS = ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)]


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


def proc_env(broker: str, db_url: str, topic: str, **extra: str) -> dict[str, str]:
    """Environment for processes that load tests.outbox.outbox_app."""
    env = dict(os.environ)
    if broker.startswith("kafka://"):
        env["TIDINGS_KAFKA_SESSION_TIMEOUT_MS"] = "6000"
        env["TIDINGS_KAFKA_HEARTBEAT_INTERVAL_MS"] = "1000"
    env.update(
        TIDINGS_BROKER=broker,
        TOPIC=topic,
        OUTBOX_DATABASE_URL=db_url,
        PYTHONPATH=os.getcwd(),
        **extra,
    )
    return env


def tidings(*args: str) -> list[str]:
    """The argv of `tidings ARGS` run with this interpreter."""
    return [sys.executable, "-m", "tidings.cli", *args]
