"""Crash tests of the two edges, with real processes SIGKILLed at random moments.

- Outbox: a writer process commits outbox transactions (one in seven rolled back on
  purpose) and is SIGKILLed 5 times while two `tidings relay` processes run and are
  SIGKILLed too. Every committed event reaches the broker, none rolled back does, and per
  key the first copies arrive in commit order. Duplicates (a relay killed between its
  produce and its commit) are counted and printed. 1,500 transactions rather than the
  issue's 5,000, to stay well under a minute per database and broker.
- Inbox: two `tidings run` consumers are SIGKILLed 5 times between them; the ledger their
  handler writes through the inbox has exactly one row per event (redeliveries are
  counted and printed).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from tests.helpers import wait_until
from tests.outbox.conftest import Db
from tests.outbox.helpers import BROKERS, broker_for, proc_env, read_topic, seqs, tidings
from tests.outbox.outbox_app import KEYS, TABLES, Booked, rolled_back
from tidings import App
from tidings.outbox import Inbox, Outbox

TRANSACTIONS = 1_500
EVENTS = 600
KILLS = 5


def setup_tables(db: Db) -> None:
    engine = create_engine(db.url, poolclass=NullPool)
    TABLES.create_all(engine)
    engine.dispose()
    Outbox(App("setup").publisher, lambda: None, db.engine).create_tables()  # type: ignore[arg-type,return-value]
    Inbox(db.engine).create_tables()


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.parametrize("broker", BROKERS)
def test_sigkilled_writer_and_relays_lose_nothing_and_keep_order(
    sync_db: Db, broker: str, tmp_path: Path, topic_name: str
) -> None:
    url = broker_for(broker, tmp_path)
    app = App("outbox-proc", broker=url)
    app.topic(topic_name, partitions=3)
    assert app.backend  # creates the topic
    setup_tables(sync_db)
    env = proc_env(url, sync_db.url, topic_name)
    rng = random.Random()

    def writer() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.outbox.outbox_app", "write", str(TRANSACTIONS)], env=env
        )

    def relay() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            tidings("relay", "tests.outbox.outbox_app:app", "--every", "600"),
            env=env,
            stdout=subprocess.DEVNULL,
        )

    procs = [writer(), relay(), relay()]
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            procs[0].kill()
            procs[0].wait()
            procs[0] = writer()
            i = rng.choice([1, 2])
            procs[i].kill()
            procs[i].wait()
            procs[i] = relay()
        assert procs[0].wait(60) == 0
        wait_until(
            lambda: not sync_db.scalar("SELECT count(*) FROM tidings_outbox"),
            60,
            "the relays to empty the outbox",
        )
        committed = {int(s) for s in sync_db.scalar_list("SELECT seq FROM committed")}
    finally:
        stop(procs)
    try:
        records = read_topic(app.backend, topic_name, len(committed), timeout=30)
    finally:
        app.close()
    sent = seqs(records)
    assert any(rolled_back(s) for s in range(1, TRANSACTIONS + 1))
    assert set(sent) == committed, (
        f"lost {sorted(committed - set(sent))[:10]}, rolled back yet sent "
        f"{sorted(set(sent) - committed)[:10]}"
    )
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[int] = set()
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        (seq,) = seqs([r])
        if seq not in seen:
            seen.add(seq)
            first[KEYS[seq % len(KEYS)]].append(seq)
    for key, order in first.items():
        assert order == sorted(order), f"key {key}: first copies out of commit order"
    duplicates = len(sent) - len(set(sent))
    print(f"{sync_db.kind}/{broker}: {len(committed)} committed, {duplicates} duplicates")


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.parametrize("broker", BROKERS)
def test_with_the_inbox_each_event_is_paid_once_despite_sigkills(
    sync_db: Db, broker: str, tmp_path: Path, topic_name: str
) -> None:
    url = broker_for(broker, tmp_path)
    app = App("outbox-proc", broker=url)
    topic = app.topic(topic_name, partitions=3)
    setup_tables(sync_db)
    deliveries = tmp_path / "deliveries.log"
    env = proc_env(
        url, sync_db.url, topic_name, CONSUME="1", DELIVERIES=str(deliveries), HANDLER_SLEEP="0.002"
    )
    rng = random.Random()

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(tidings("run", "tests.outbox.outbox_app:app"), env=env)

    def paid() -> int:
        return int(sync_db.scalar("SELECT count(DISTINCT seq) FROM ledger"))

    procs: list[subprocess.Popen[bytes]] = []
    try:
        app.publish_many(
            topic, [(KEYS[i % 20], Booked(key=KEYS[i % 20], seq=i)) for i in range(EVENTS)]
        )
        procs = [worker(), worker()]
        for _ in range(KILLS):
            target = paid() + rng.randint(20, EVENTS // (KILLS + 2))
            wait_until(lambda t=target: paid() >= min(t, EVENTS - 1), 60, "payments to progress")
            i = rng.choice([0, 1])
            procs[i].kill()
            procs[i].wait()
            procs[i] = worker()
        wait_until(lambda: paid() == EVENTS, 90, "every event to be paid")
    finally:
        stop(procs)
        app.close()
    assert sync_db.scalar("SELECT count(*) FROM ledger") == EVENTS, "an event was paid twice"
    delivered = len(deliveries.read_text().splitlines())
    print(f"{sync_db.kind}/{broker}: {delivered - EVENTS} redeliveries skipped by the inbox")
