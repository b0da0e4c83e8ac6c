"""The CLI against a real Apache Kafka broker (`scripts/kafka start`): the same commands work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.conftest import require_kafka
from tidings.backends.registry import open_backend
from tidings.records import Record
from tidings.runtime.dead_letters import dead_letter

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka_cli() -> Cli:
    return Cli(f"kafka://{require_kafka()}")


def test_topics_publish_tail_and_groups_on_kafka(kafka_cli: Cli, topic_name: str) -> None:
    cli = kafka_cli
    cli.ok("topics", "create", topic_name, "--partitions", "3", "--retention", "1d")
    (info,) = [t for t in cli.json("topics", "list") if t["name"] == topic_name]
    assert info["partitions"] == 3 and info["retention_seconds"] == 86400
    for n in range(5):
        cli.ok("publish", topic_name, "-t", "CliRawKafkaTick", "-k", f"k{n}", f'{{"n": {n}}}')
    records = cli.json_lines("tail", topic_name, "--from-beginning")
    assert sorted(r["value"]["n"] for r in records) == list(range(5))
    assert len(cli.json_lines("tail", topic_name, "-n", "2")) == 2

    group = f"{topic_name}-g"
    cli.ok("groups", "reset", group, "--topic", topic_name, "--to", "earliest", "--yes")
    assert cli.lag(group) == 5
    cli.ok("groups", "reset", group, "--to", "latest", "--yes")
    assert cli.lag(group) == 0


def test_dlq_replay_on_kafka(kafka_cli: Cli, topic_name: str) -> None:
    cli = kafka_cli
    group = f"billing-{topic_name}"  # unique: the broker is shared by the whole session
    dlq = f"{topic_name}.{group}.dlq"
    cli.ok("topics", "create", topic_name)
    cli.ok("topics", "create", dlq)
    backend = open_backend(cli.broker)
    try:
        failed = [
            dead_letter(
                Record(topic_name, 0, n, b"k", b'{"n": %d}' % n, (), time.time()),
                group=group,
                reason="handler_error",
                error=ValueError("declined"),
                attempts=3,
                now=time.time(),
            )
            for n in range(2)
        ]
        backend.produce(failed)
    finally:
        backend.close()
    assert cli.json("dlq", "list", "--group", group)["topics"] == {dlq: 2}
    assert cli.json("dlq", "replay", "--group", group, "--topic", topic_name)["replayed"] == 2
    assert cli.json("dlq", "replay", "--group", group, "--topic", topic_name)["replayed"] == 0
    letters = cli.json("dlq", "list", "--group", group)["dead_letters"]
    assert [d["status"] for d in letters] == ["replayed", "replayed"]
    replayed = cli.json_lines("tail", topic_name, "--from-beginning")
    assert [r["headers"]["tidings-replay-group"] for r in replayed] == [group, group]


def test_an_unreachable_broker_gives_one_clear_error(tmp_path: Path) -> None:
    """No raw client lines before the error; the scripts/kafka advice says where it applies."""
    result = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "topics", "list", "--broker", "kafka://127.0.0.1:1"],
        cwd=tmp_path,
        env={**os.environ, "TIDINGS_KAFKA_CONNECT_TIMEOUT": "2", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: No Kafka broker answered at 127.0.0.1:1"), line
    assert "In a tidings checkout, `scripts/kafka start`" in line
