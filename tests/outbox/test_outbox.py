"""The transactional outbox: what commits is relayed once, what rolls back never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.outbox.conftest import Db
from tests.outbox.helpers import BROKERS, Booked, broker_for, read_topic, seqs
from tidings import App
from tidings.outbox import Relay
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
