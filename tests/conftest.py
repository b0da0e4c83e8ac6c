"""Fixtures shared by every test: brokers of each kind and unique topic names."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

KAFKA_HOST = "127.0.0.1"


def kafka_bootstrap() -> str:
    return os.environ.get(
        "TIDINGS_KAFKA_BOOTSTRAP", f"{KAFKA_HOST}:{os.environ.get('TIDINGS_KAFKA_PORT', '9092')}"
    )


def _kafka_reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def require_kafka() -> str:
    """Return the bootstrap address of the test broker, or skip (fail under CI) without one."""
    bootstrap = kafka_bootstrap()
    if _kafka_reachable(bootstrap):
        return bootstrap
    reason = (
        f"no Kafka broker at {bootstrap}; run `scripts/kafka start` "
        "(needs Java 17+ and Maven) or `make test`, which starts one"
    )
    if os.environ.get("TIDINGS_REQUIRE_KAFKA") == "1":
        pytest.fail(f"TIDINGS_REQUIRE_KAFKA=1 but {reason}", pytrace=False)
    pytest.skip(reason)


BACKENDS = ["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)]


@pytest.fixture(params=BACKENDS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A broker URL for each backend: memory, embedded (SQLite in tmp_path) and Kafka."""
    kind = request.param
    if kind == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif kind == "embedded":
        yield f"embedded://{tmp_path / 'data'}"
    else:
        yield f"kafka://{require_kafka()}"


_admin: list[Any] = []


def drop_kafka_topics(prefix: str) -> None:
    """Delete the test broker's topics whose names start with `prefix` (without waiting).

    Every Kafka test creates topics of its own; left behind, hundreds of them make listing
    topics (and the tests that time around it) slower for every test after them.
    """
    from confluent_kafka.admin import AdminClient

    if not _admin:
        _admin.append(AdminClient({"bootstrap.servers": kafka_bootstrap(), "log_level": 0}))
    admin = _admin[0]
    try:
        names = [t for t in admin.list_topics(timeout=5).topics if t.startswith(prefix)]
        if names:
            admin.delete_topics(names, operation_timeout=5)
    except Exception:  # cleanup only: a broker that went away is some other test's failure
        pass


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A topic name no other test uses (the Kafka broker is shared by the session).

    After a Kafka test, the topics named after it (and its retry and dead-letter topics) are
    deleted.
    """
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    if request.node.get_closest_marker("kafka") and _kafka_reachable(kafka_bootstrap()):
        drop_kafka_topics(name)
