"""Two groups, two worker processes each; one worker is SIGKILLed mid-way.

Every group still handles every event (duplicates allowed and counted), and for each key
the first deliveries happen in publish order. Runs on the embedded store and on Kafka.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tests.scenarios.ledger_worker import Tick, check_group, read_ledgers, worker_env
from tidings import App

EVENTS = 5_000
GROUPS = ("billing", "audit")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_sigkill_of_a_worker_loses_nothing(kind: str, tmp_path: Path, topic_name: str) -> None:
    url = f"kafka://{require_kafka()}" if kind == "kafka" else f"embedded://{tmp_path / 'data'}"
    env = worker_env(url, tmp_path, topic_name, HANDLER_SLEEP="0.0005")
    app = App("publisher", broker=url)
    topic = app.topic(topic_name, partitions=3)
    assert app.backend  # creates the topic before workers subscribe

    workers = []
    for group in GROUPS:
        for _ in range(2):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.scenarios.ledger_worker"],
                    env={**env, "GROUPS": group},
                )
            )
    try:
        keys = [f"k{i}" for i in range(50)]
        for start in range(0, EVENTS, 500):
            app.publish_many(
                topic,
                [(keys[i % 50], Tick(key=keys[i % 50], seq=i)) for i in range(start, start + 500)],
            )
            if start == 1_000:
                wait_until(
                    lambda: sum(1 for r in read_ledgers(tmp_path) if r[0] == "billing") > 500,
                    60,
                    "billing workers to get going",
                )
                workers[0].send_signal(signal.SIGKILL)  # a billing worker dies mid-flight
                workers[0].wait()

        def complete() -> bool:
            rows = read_ledgers(tmp_path)
            return all(len({r[2] for r in rows if r[0] == g}) == EVENTS for g in GROUPS)

        wait_until(complete, 120, "every group to handle every event")
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        app.close()

    for w in workers[1:]:
        assert w.returncode == 0, "a surviving worker did not stop cleanly on SIGTERM"
    rows = read_ledgers(tmp_path)
    for group in GROUPS:
        duplicates = check_group(rows, group, EVENTS)
        print(f"{kind} {group}: {duplicates} duplicates")
        if group == "audit":
            assert duplicates == 0, "nobody was killed in audit: no duplicates expected"
