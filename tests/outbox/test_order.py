"""Order per key through the outbox: relayed order equals commit order, per key.

Commit order is what the database says: on PostgreSQL the commit timestamp of each row's
transaction (scripts/postgres turns on track_commit_timestamp), on SQLite the id (one
writer commits at a time, and ids are allocated under its lock).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tests.helpers import wait_until
from tests.outbox.conftest import Db
from tests.outbox.helpers import BROKERS, Booked, broker_for, read_topic, seqs
from tidings import App
from tidings.outbox import Relay

THREADS = 8
TRANSACTIONS = 25
KEYS = [f"k{i}" for i in range(6)]


def create_txlog(db: Db) -> None:
    """A table where each writer notes (seq, key, its transaction id) next to its publish."""
    xid = "n bigserial PRIMARY KEY, seq int, key text, x xid"
    ddl = (
        xid
        if not db.kind.startswith("sqlite")
        else "n integer PRIMARY KEY, seq int, key text, x int"
    )
    engine = create_engine(db.sync_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE txlog ({ddl})"))
    engine.dispose()


def note(db: Db) -> Any:
    """The statement a writer runs with its events' (seq, key)."""
    x = "xid(pg_current_xact_id())" if not db.kind.startswith("sqlite") else "0"
    return text(f"INSERT INTO txlog (seq, key, x) VALUES (:seq, :key, {x})")


def commit_order(db: Db) -> dict[str, list[int]]:
    """Per key, the seqs in the order their transactions committed (PostgreSQL: by commit
    timestamp; SQLite: by insertion, since one writer commits at a time)."""
    stamp = "pg_xact_commit_timestamp(x)" if not db.kind.startswith("sqlite") else "0"
    engine = create_engine(db.sync_url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {stamp}, n, seq, key FROM txlog")).all()
    engine.dispose()
    order: dict[str, list[int]] = defaultdict(list)
    for _, _, seq, key in sorted(rows, key=lambda r: (r[0], r[1])):
        order[key].append(seq)
    return order


@pytest.mark.slow
@pytest.mark.parametrize("broker", BROKERS)
def test_eight_writers_two_relays_keep_commit_order_per_key(
    db: Db, broker: str, tmp_path: Path, topic_name: str
) -> None:
    app = App("orders", broker=broker_for(broker, tmp_path))
    topic = app.topic(topic_name, partitions=3)
    outbox = app.outbox(db.engine, batch=50, poll=0.05)
    outbox.create_tables()
    create_txlog(db)
    statement = note(db)
    counter = itertools.count()
    count_lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(TRANSACTIONS):
                size = rng.randint(1, 6)
                pause = rng.random() * 0.004

                def body(s: Session | AsyncSession, size: int = size, pause: float = pause) -> Any:
                    noted = []
                    for _ in range(size):
                        key = rng.choice(KEYS)
                        with count_lock:
                            seq = next(counter)
                        outbox.publish(s, topic, Booked(key=key, seq=seq), key=key)
                        noted.append({"seq": seq, "key": key})
                    # A slow commit: the pause falls after tidings inserted the rows (its
                    # listener runs first) and before COMMIT, where a later transaction on
                    # the same key could otherwise overtake this one.
                    sync = s.sync_session if isinstance(s, AsyncSession) else s
                    event.listen(sync, "before_commit", lambda _: time.sleep(pause))
                    return s.execute(statement, noted)  # awaited by db.transaction if async

                db.transaction(body)
        except BaseException as exc:
            errors.append(exc)

    relays = [Relay(outbox), Relay(outbox)]
    try:
        with contextlib.ExitStack() as running:
            threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
            for t in threads:
                t.start()
            # The relays start half-way: the first half is relayed in one sweep (so a
            # transaction that overtook another on the same key would show), the second
            # half while writers commit.
            wait_until(lambda: db.scalar("SELECT count(*) FROM txlog") > 200, 60)
            for relay in relays:
                running.enter_context(relay.running())
            for t in threads:
                t.join(120)
            assert not errors, errors
            total = next(counter)
            wait_until(
                lambda: (
                    not db.scalar("SELECT count(*) FROM tidings_outbox WHERE relayed_at IS NULL")
                ),
                60,
                "the relays to empty the outbox",
            )
        records = read_topic(app.backend, topic_name, total)
        sent: dict[str, list[int]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            sent[(r.key or b"").decode()].extend(seqs([r]))
        assert sum(len(v) for v in sent.values()) == total, "an event was lost or doubled"
        assert dict(sent) == dict(commit_order(db))
        assert sum(r.relayed for r in relays) == total
    finally:
        app.close()


@pytest.mark.parametrize("broker", BROKERS)
def test_a_lower_id_committed_after_a_higher_one_was_relayed_is_relayed(
    db: Db, broker: str, tmp_path: Path, topic_name: str
) -> None:
    """Watermill #311: a relay that remembers the highest id it sent would skip it forever."""
    if db.kind.startswith("sqlite"):
        pytest.skip("SQLite has one writer: a lower id cannot commit after a higher one")
    app = App("orders", broker=broker_for(broker, tmp_path))
    topic = app.topic(topic_name, partitions=1)
    outbox = app.outbox(db.engine)
    outbox.create_tables()
    relay = Relay(outbox)
    inserted = threading.Event()
    release = threading.Event()
    slow_id: list[int] = []

    def slow(s: Any) -> None:
        sync = s.sync_session if isinstance(s, AsyncSession) else s

        @event.listens_for(sync, "before_commit")
        def stall(session: Session) -> None:  # runs after tidings inserted the row
            slow_id.append(session.execute(text("SELECT max(id) FROM tidings_outbox")).scalar())
            inserted.set()
            assert release.wait(30)

        outbox.publish(s, topic, Booked(key="slow", seq=1), key="slow")

    thread = threading.Thread(target=db.transaction, args=(slow,))
    thread.start()
    try:
        assert inserted.wait(30)
        db.transaction(lambda s: outbox.publish(s, topic, Booked(key="fast", seq=2), key="fast"))
        assert relay.drain() == 1
        assert db.scalar("SELECT min(id) FROM tidings_outbox") is None
        release.set()
        thread.join(30)
        assert slow_id and slow_id[0] < db.scalar("SELECT nextval('tidings_outbox_id_seq')") - 1
        assert relay.drain() == 1
        assert seqs(read_topic(app.backend, topic_name, 2)) == [2, 1]
    finally:
        release.set()
        thread.join(30)
        relay.close()
        app.close()
