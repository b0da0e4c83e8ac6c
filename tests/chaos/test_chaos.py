"""Chaos: 20,000 events, 3 groups with 2 worker processes each, random SIGKILLs.

Workers are SIGKILLed at random moments (at least 5 kills in all) and restarted. At the
end every group has handled every event (zero lost); duplicates are counted and bounded by
the in-flight window of the killed workers; among first deliveries, per-key order held.
The seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tests.scenarios.ledger_worker import Tick, check_group, read_ledgers, worker_env
from tidings import App

EVENTS = 20_000
GROUPS = ("billing", "audit", "search")
MAX_IN_FLIGHT = 300
KILLS = 6

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_random_sigkills_lose_nothing(kind: str, tmp_path: Path, topic_name: str) -> None:
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    url = f"kafka://{require_kafka()}" if kind == "kafka" else f"embedded://{tmp_path / 'data'}"
    env = worker_env(
        url, tmp_path, topic_name, HANDLER_SLEEP="0.0002", MAX_IN_FLIGHT=str(MAX_IN_FLIGHT)
    )
    app = App("publisher", broker=url)
    topic = app.topic(topic_name, partitions=3)
    assert app.backend

    def spawn(group: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.scenarios.ledger_worker"],
            env={**env, "GROUPS": group},
            stderr=subprocess.DEVNULL,
        )

    slots = [(group, spawn(group)) for group in GROUPS for _ in range(2)]
    kills: dict[str, int] = defaultdict(int)
    keys = [f"k{i}" for i in range(200)]
    try:
        published = 0
        while published < EVENTS or sum(kills.values()) < KILLS:
            if published < EVENTS:
                chunk = [
                    (keys[i % 200], Tick(key=keys[i % 200], seq=i))
                    for i in range(published, min(EVENTS, published + 1_000))
                ]
                app.publish_many(topic, chunk)
                published += len(chunk)
            time.sleep(rng.uniform(0.1, 0.6))
            if sum(kills.values()) < KILLS and rng.random() < 0.7:
                i = rng.randrange(len(slots))
                group, proc = slots[i]
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills[group] += 1
                time.sleep(rng.uniform(0.0, 0.5))
                slots[i] = (group, spawn(group))

        def complete() -> bool:
            rows = read_ledgers(tmp_path)
            return all(len({r[2] for r in rows if r[0] == g}) == EVENTS for g in GROUPS)

        wait_until(complete, 240, "every group to handle every event")
    finally:
        for _, proc in slots:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in slots:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        app.close()

    rows = read_ledgers(tmp_path)
    # In flight per killed worker: its cap plus one fetch, plus what finished but was not yet
    # committed (0.1 s commit interval at well under 5,000 events/s).
    window = MAX_IN_FLIGHT + 500 + 500
    for group in GROUPS:
        duplicates = check_group(rows, group, EVENTS)
        print(f"{kind} {group}: kills={kills[group]} duplicates={duplicates} (seed {seed})")
        assert duplicates <= kills[group] * window, (group, duplicates, kills[group], seed)
    assert sum(kills.values()) >= KILLS
