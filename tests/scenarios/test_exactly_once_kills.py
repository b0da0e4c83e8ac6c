"""Consume-transform-produce (in -> out) under 5 SIGKILLs of its worker process.

With exactly_once=True, a read_committed reader of `out` sees each input's output exactly
once, in per-key order, and nothing is lost. The same run without it shows duplicates: each
kill lands while a handler whose output is already published waits (a marker file says
when), so the test would fail if exactly_once did nothing. Embedded store and Kafka.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tests.scenarios.eos_worker import KillOrder, KillShipped
from tidings import App
from tidings.backends.base import Backend
from tidings.records import Record

ORDERS = 300
KILLS = 5
KEYS = 12


def run_with_kills(url: str, tmp_path: Path, topic: str, exactly_once: bool) -> list[KillShipped]:
    """Run the worker, SIGKILL it at each of KILLS marked orders, let it finish; read out."""
    markers = tmp_path / f"markers-{exactly_once}"
    markers.mkdir()
    kill_at = [ORDERS * (i + 1) // (KILLS + 1) for i in range(KILLS)]
    src, out = f"{topic}-in-{int(exactly_once)}", f"{topic}-out-{int(exactly_once)}"
    env = dict(
        os.environ,
        TIDINGS_BROKER=url,
        SRC=src,
        OUT=out,
        GROUP=f"{src}-transform",
        MARKERS=str(markers),
        EXACTLY_ONCE="1" if exactly_once else "0",
        KILL_AT=",".join(map(str, kill_at)),
        MEMBER=f"eos-{uuid.uuid4().hex[:8]}",
        PYTHONPATH=os.getcwd(),
    )
    app = App("eos-test", broker=url, status_interval=None)
    src_topic = app.topic(src, partitions=3)
    app.topic(out, partitions=3)
    try:
        app.backend.ensure_topics(list(app.topics.values()))
        app.publish_many(
            src_topic, [(f"k{i % KEYS}", KillOrder(n=i, key=f"k{i % KEYS}")) for i in range(ORDERS)]
        )
        cmd = [sys.executable, "-m", "tests.scenarios.eos_worker"]
        for n in kill_at:
            worker = subprocess.Popen(cmd, env=env)
            try:
                wait_until(lambda n=n: (markers / str(n)).exists(), 60, f"order {n} to start")
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
        worker = subprocess.Popen(cmd, env=env)
        try:
            wait_until(
                lambda: committed(app.backend, src, f"{src}-transform") == ORDERS,
                60,
                "every order handled",
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        return [KillShipped.model_validate_json(r.value or b"") for r in read_out(app.backend, out)]
    finally:
        app.close()


def committed(backend: Backend, topic: str, group: str) -> int:
    return sum(
        p.committed or 0
        for g in backend.groups()
        if g.group == group
        for p in g.partitions
        if p.topic == topic
    )


def read_out(backend: Backend, topic: str) -> list[Record]:
    """Read `topic` (read_committed on Kafka) until ORDERS records came, then 1 s more."""
    handle = backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list[Record] = []
    deadline = time.monotonic() + 20  # a new Kafka reader's first fetch can take seconds
    try:
        while len(records) < ORDERS and time.monotonic() < deadline:
            records += handle.fetch(1000, 0.2)
        settle = time.monotonic() + 1.0  # duplicates, if any, arrive meanwhile
        while time.monotonic() < settle:
            records += handle.fetch(1000, 0.2)
    finally:
        handle.close()
    return records


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_exactly_once_survives_sigkills(kind: str, tmp_path: Path, topic_name: str) -> None:
    url = f"kafka://{require_kafka()}" if kind == "kafka" else f"embedded://{tmp_path / 'data'}"
    shipped = run_with_kills(url, tmp_path, topic_name, exactly_once=True)
    counts = Counter(s.n for s in shipped)
    assert set(counts) == set(range(ORDERS)), f"lost: {sorted(set(range(ORDERS)) - set(counts))}"
    duplicated = {n: c for n, c in counts.items() if c > 1}
    assert not duplicated, f"outputs written more than once: {duplicated}"
    by_key: dict[str, list[int]] = defaultdict(list)
    for s in shipped:
        by_key[s.key].append(s.n)
    for key, order in by_key.items():
        assert order == sorted(order), f"key {key} out of order: {order}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_without_exactly_once_the_same_kills_duplicate(
    kind: str, tmp_path: Path, topic_name: str
) -> None:
    url = f"kafka://{require_kafka()}" if kind == "kafka" else f"embedded://{tmp_path / 'data'}"
    shipped = run_with_kills(url, tmp_path, topic_name, exactly_once=False)
    counts = Counter(s.n for s in shipped)
    assert set(counts) == set(range(ORDERS))  # at least once: nothing lost either
    assert sum(c - 1 for c in counts.values()) >= KILLS  # each killed order's output twice
