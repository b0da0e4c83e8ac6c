"""The idempotent inbox: a group handles an event once; a failed handling claims nothing."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.helpers import wait_until
from tests.outbox.conftest import Db
from tests.outbox.helpers import Booked, broker_for
from tidings import App, Context, Retry
from tidings.outbox import Inbox


def ctx(event_id: str, group: str = "payments") -> Context:
    return Context("t", 0, 0, "k", {}, event_id, "Booked", 0.0, 1, group)


def claim(db: Db, inbox: Inbox, context: Context, commit: bool = True) -> Any:
    def body(s: Any) -> Any:
        return inbox.claim_async(s, context) if db.is_async else inbox.claim(s, context)

    return db.transaction(body, commit=commit)


def test_a_group_claims_an_event_once(db: Db) -> None:
    inbox = Inbox(db.engine)
    inbox.create_tables()
    assert claim(db, inbox, ctx("e1")) is True
    assert claim(db, inbox, ctx("e1")) is False, "the same group claimed an event twice"
    assert claim(db, inbox, ctx("e1", group="audit")) is True, "groups share claims"
    assert claim(db, inbox, ctx("e2"), commit=False) is None  # rolled back: not claimed
    assert claim(db, inbox, ctx("e2")) is True
    assert (inbox.claimed, inbox.skipped) == (3 + 1, 1)
    assert db.scalar("SELECT count(*) FROM tidings_inbox") == 3


def test_cleanup_removes_rows_older_than_keep(db: Db) -> None:
    inbox = Inbox(db.engine, keep=timedelta(hours=1))
    inbox.create_tables()
    assert claim(db, inbox, ctx("old"))
    assert claim(db, inbox, ctx("new"))
    db.execute("UPDATE tidings_inbox SET handled_at = handled_at - 7200 WHERE event_id = 'old'")
    assert inbox.cleanup() == 1
    assert db.scalar("SELECT event_id FROM tidings_inbox") == "new"
    assert Inbox(db.engine).keep == timedelta(days=7)


def test_a_dead_lettered_event_is_not_claimed(db: Db, tmp_path: Path, topic_name: str) -> None:
    app = App("payments", broker=broker_for("embedded", tmp_path))
    topic = app.topic(topic_name)
    inbox = app.inbox(db.engine)
    inbox.create_tables()
    claims: list[Any] = []
    lock = threading.Lock()

    @app.consumer(topic, group="payments", retry=Retry(attempts=2, backoff=0.01))
    def pay(event: Booked, context: Context) -> None:
        def body(s: Any) -> Any:
            async def go() -> None:
                result = await inbox.claim_async(s, context)
                with lock:
                    claims.append(result)
                raise RuntimeError("payment provider down")

            if db.is_async:
                return go()
            result = inbox.claim(s, context)
            with lock:
                claims.append(result)
            raise RuntimeError("payment provider down")

        db.transaction(body)

    try:
        app.publish(topic, Booked(key="a", seq=1), key="a")
        with app.running():
            wait_until(
                lambda: any(
                    t.name.endswith(".dlq") and sum(t.end_offsets) for t in app.backend.topics()
                ),
                30,
                "the event to be dead-lettered",
            )
        assert claims == [True, True], "the failed first attempt left its claim behind"
        assert db.scalar("SELECT count(*) FROM tidings_inbox") == 0
    finally:
        app.close()
