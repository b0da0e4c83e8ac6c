"""`tidings relay APP` and `tidings run APP`: both relay what the app's outbox holds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.helpers import wait_until
from tests.outbox.conftest import Db
from tests.outbox.helpers import broker_for, proc_env, read_topic, seqs, tidings
from tests.outbox.outbox_app import TABLES, Booked
from tidings import App, Context
from tidings.outbox import Relay


def test_relay_once_relays_and_prints_counts(sync_db: Db, tmp_path: Path, topic_name: str) -> None:
    url = broker_for("embedded", tmp_path)
    app = App("outbox-proc", broker=url)
    topic = app.topic(topic_name, partitions=3)
    outbox = app.outbox(sync_db.engine)
    outbox.create_tables()
    try:
        with Session(sync_db.engine) as s, s.begin():
            for i in range(3):
                outbox.publish(s, topic, Booked(key="a", seq=i), key="a")
        assert outbox.statistics().backlog == 3
        done = subprocess.run(
            tidings("relay", "tests.outbox.outbox_app:app", "--once"),
            env=proc_env(url, sync_db.url, topic_name),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "relayed 3 " in done.stdout and "backlog 0, oldest -" in done.stdout, done.stdout
        assert seqs(read_topic(app.backend, topic_name, 3)) == [0, 1, 2]
    finally:
        app.close()


def test_relay_of_an_app_without_outbox_says_so(tmp_path: Path) -> None:
    (tmp_path / "plain_app.py").write_text("from tidings import App\napp = App('plain')\n")
    done = subprocess.run(
        tidings("relay", "plain_app:app"),
        cwd=tmp_path,
        env={**proc_env("memory://x", "sqlite://", "t"), "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "declares no outbox" in done.stderr and "app.outbox(engine)" in done.stderr


def test_tidings_run_relays_the_outbox_and_cleans_the_inbox(
    sync_db: Db, tmp_path: Path, topic_name: str
) -> None:
    url = broker_for("embedded", tmp_path)
    app = App("outbox-proc", broker=url)
    topic = app.topic(topic_name, partitions=3)
    outbox = app.outbox(sync_db.engine)
    outbox.create_tables()
    inbox = app.inbox(sync_db.engine)
    inbox.create_tables()
    TABLES.create_all(sync_db.engine)
    old = Context("t", 0, 0, None, {}, "old", "Booked", 0.0, 1, "payments")
    with Session(sync_db.engine) as s, s.begin():
        assert inbox.claim(s, old)
    sync_db.execute("UPDATE tidings_inbox SET handled_at = handled_at - 8 * 86400")
    with Session(sync_db.engine) as s, s.begin():
        for i in range(2):
            outbox.publish(s, topic, Booked(key="a", seq=i), key="a")
    assert app.backend  # the topic exists before the worker subscribes
    env = proc_env(
        url, sync_db.url, topic_name, CONSUME="1", DELIVERIES=str(tmp_path / "deliveries")
    )
    worker = subprocess.Popen(tidings("run", "tests.outbox.outbox_app:app"), env=env)
    try:
        wait_until(lambda: sync_db.scalar("SELECT count(*) FROM ledger") == 2, 30, "payments")
        wait_until(
            lambda: not sync_db.scalar("SELECT count(*) FROM tidings_inbox WHERE event_id='old'"),
            30,
            "the week-old claim to be cleaned up",
        )
        assert sync_db.scalar("SELECT count(*) FROM tidings_outbox") == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        app.close()


def test_a_commit_in_another_process_wakes_the_relay_through_notify(
    sync_db: Db, tmp_path: Path, topic_name: str
) -> None:
    if sync_db.kind != "postgresql":
        pytest.skip("SQLite has no NOTIFY: a relay learns of other processes' commits by polling")
    url = broker_for("embedded", tmp_path)
    app = App("outbox-proc", broker=url)
    app.topic(topic_name, partitions=3)
    outbox = app.outbox(sync_db.engine, poll=60.0)  # polling alone would take a minute
    outbox.create_tables()
    TABLES.create_all(sync_db.engine)
    try:
        with Relay(outbox).running():
            wait_until(
                lambda: sync_db.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE 'LISTEN tidings%'"
                ),
                30,
                "the relay to LISTEN",
            )
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "tests.outbox.outbox_app", "write", "1"],
                env=proc_env(url, sync_db.url, topic_name),
                check=True,
                timeout=60,
            )
            wait_until(lambda: outbox.relayed == 1, 10, "the relay to wake on NOTIFY")
            assert time.monotonic() - started < 10
        assert seqs(read_topic(app.backend, topic_name, 1)) == [1]
    finally:
        app.close()
