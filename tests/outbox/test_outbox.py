"""The transactional outbox: what commits is relayed once, what rolls back never is."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.helpers import wait_until
from tests.outbox.conftest import Db
from tests.outbox.helpers import BROKERS, Booked, broker_for, read_topic, seqs
from tidings import App
from tidings.outbox import OutboxStats, Relay
from tidings.wire import H_ID, H_SOURCE, H_TYPE


@pytest.mark.parametrize("broker", BROKERS)
def test_commit_publishes_once_and_rollback_nothing(
    db: Db, broker: str, tmp_path: Path, topic_name: str
) -> None:
    app = App("accounts", broker=broker_for(broker, tmp_path))
    topic = app.topic(topic_name, partitions=3)
    outbox = app.outbox(db.engine)
    outbox.create_tables()
    relay = Relay(outbox)
    try:
        ids = db.transaction(
            lambda s: [outbox.publish(s, topic, Booked(key="a", seq=i), key="a") for i in (1, 2)]
        )
        db.transaction(
            lambda s: outbox.publish(s, topic, Booked(key="a", seq=99), key="a"), commit=False
        )
        assert relay.drain() == 2
        assert relay.drain() == 0, "a second pass relayed the same rows again"
        records = read_topic(app.backend, topic_name, 2)
        assert seqs(records) == [1, 2]
        assert [r.header(H_ID) for r in records] == [i.encode() for i in ids]
        assert records[0].key == b"a"
        assert records[0].header(H_TYPE) == b"Booked"
        assert records[0].header(H_SOURCE) == b"accounts"
        assert db.scalar("SELECT count(*) FROM tidings_outbox") == 0
        assert outbox.committed == 2
    finally:
        relay.close()
        app.close()


def test_delay_and_at_work_through_the_outbox(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(db.engine)
    outbox.create_tables()
    relay = Relay(outbox)
    try:
        due = time.time() + 2.0
        db.transaction(
            lambda s: [
                outbox.publish(s, topic, Booked(key="a", seq=1), delay=timedelta(seconds=2)),
                outbox.publish(
                    s, topic, Booked(key="a", seq=2), at=datetime.fromtimestamp(due, UTC)
                ),
            ]
        )
        assert relay.drain() == 2
        assert read_topic(app.backend, topic_name, 1, timeout=0.3) == [], "delivered before due"
        records = read_topic(app.backend, topic_name, 2, timeout=10)
        assert sorted(seqs(records)) == [1, 2]
        assert all(r.timestamp >= due - 0.05 for r in records)
    finally:
        relay.close()
        app.close()


def test_keep_marks_rows_relayed_then_forgets_them(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(db.engine, keep=timedelta(hours=1))
    outbox.create_tables()
    relay = Relay(outbox)
    try:
        db.transaction(lambda s: outbox.publish(s, topic, Booked(key="a", seq=1), key="a"))
        assert outbox.statistics().backlog == 1
        assert (outbox.statistics().oldest_age or -1) >= 0
        assert relay.drain() == 1
        assert relay.drain() == 0
        assert outbox.statistics() == OutboxStats(0, None)
        assert db.scalar("SELECT count(*) FROM tidings_outbox WHERE relayed_at IS NOT NULL") == 1
        assert relay.forget_relayed() == 0, "forgot a row younger than keep"
        db.execute("UPDATE tidings_outbox SET relayed_at = relayed_at - 7200")
        assert relay.forget_relayed() == 1
        assert seqs(read_topic(app.backend, topic_name, 1)) == [1]
    finally:
        relay.close()
        app.close()


def test_app_running_relays_to_its_consumers(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(db.engine, poll=0.05)
    outbox.create_tables()
    handled: list[int] = []

    @app.consumer(topic, group="payments")
    def pay(event: Booked) -> None:
        handled.append(event.seq)

    try:
        with app.running():
            db.transaction(lambda s: outbox.publish(s, topic, Booked(key="a", seq=7), key="a"))
            wait_until(lambda: handled == [7], 20, "the consumer to get the outbox event")
        assert db.scalar("SELECT count(*) FROM tidings_outbox") == 0
    finally:
        app.close()


def test_one_relay_leads_at_a_time(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(db.engine)
    outbox.create_tables()
    first, second = Relay(outbox), Relay(outbox)
    try:
        db.transaction(lambda s: outbox.publish(s, topic, Booked(key="a", seq=1), key="a"))
        assert first.drain() == 1 and first.leader
        db.transaction(lambda s: outbox.publish(s, topic, Booked(key="a", seq=2), key="a"))
        assert second.drain() == 0 and not second.leader
        first.close()  # its connection goes, and its leadership with it
        assert second.drain() == 1 and second.leader
        assert seqs(read_topic(app.backend, topic_name, 2)) == [1, 2]
    finally:
        first.close()
        second.close()
        app.close()


def test_headers_survive_the_outbox_byte_for_byte(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(db.engine)
    outbox.create_tables()
    relay = Relay(outbox)
    odd = {"plain": "v", "with-nul": "a\x00b", "unicode": "é✓", "empty": ""}
    try:
        db.transaction(lambda s: outbox.publish(s, topic, Booked(key="a", seq=1), headers=odd))
        db.transaction(
            lambda s: outbox.publish(s, topic, Booked(key="a", seq=2), headers={"x": "y"})
        )
        assert relay.drain() == 2
        first, second = read_topic(app.backend, topic_name, 2)
        assert {k: first.header(k) for k in odd} == {k: v.encode() for k, v in odd.items()}
        assert second.header("x") == b"y"
        assert len(first.headers) == 6 + len(odd)
    finally:
        relay.close()
        app.close()


def test_a_rolled_back_savepoint_publishes_nothing(
    sync_db: Db, tmp_path: Path, topic_name: str
) -> None:
    app = App("accounts", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    outbox = app.outbox(sync_db.engine)
    outbox.create_tables()
    relay = Relay(outbox)
    try:
        with Session(sync_db.engine) as s, s.begin():
            outbox.publish(s, topic, Booked(key="a", seq=1), key="a")
            with s.begin_nested():
                outbox.publish(s, topic, Booked(key="a", seq=2), key="a")  # released: kept
            savepoint = s.begin_nested()
            outbox.publish(s, topic, Booked(key="a", seq=3), key="a")
            with s.begin_nested():
                outbox.publish(s, topic, Booked(key="a", seq=4), key="a")  # inside the rolled back
            savepoint.rollback()
            outbox.publish(s, topic, Booked(key="a", seq=5), key="a")
            savepoint = s.begin_nested()
            outbox.publish(s, topic, Booked(key="a", seq=6), key="a")  # still pending
            savepoint.rollback()
        assert relay.drain() == 3
        assert seqs(read_topic(app.backend, topic_name, 3)) == [1, 2, 5]
        assert outbox.committed == 3
    finally:
        relay.close()
        app.close()
