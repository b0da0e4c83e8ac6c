"""Delivery behaviour, the same on every backend (memory, embedded SQLite, real Kafka)."""

from __future__ import annotations

import threading
from collections import defaultdict

from tests.helpers import wait_until
from tidings import App, Context, Event, Retry
from tidings.records import TopicPartition


class Deposited(Event):
    account_id: str
    seq: int


class Withdrawn(Event):
    account_id: str
    amount: int


def committed(app: App, group: str, topic: str) -> dict[int, int | None]:
    for g in app.backend.groups():
        if g.group == group:
            return {p.partition: p.committed for p in g.partitions if p.topic == topic}
    return {}


def fully_committed(app: App, group: str, topic: str) -> bool:
    ends = {
        i: e
        for i, e in enumerate(next(t for t in app.backend.topics() if t.name == topic).end_offsets)
    }
    got = committed(app, group, topic)
    return all((got.get(p) or 0) == end for p, end in ends.items())


def test_every_group_receives_every_event_in_key_order(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=3)
    seen: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    lock = threading.Lock()

    def record(group: str, e: Deposited) -> None:
        with lock:
            seen[group][e.account_id].append(e.seq)

    @app.consumer(topic, group="payments", concurrency=4)
    async def payments(e: Deposited) -> None:
        record("payments", e)

    @app.consumer(topic, group="analytics")
    def analytics(e: Deposited, ctx: Context) -> None:
        assert ctx.group == "analytics" and ctx.attempt == 1 and ctx.key == e.account_id
        record("analytics", e)

    app.publish_many(
        topic, [(str(i % 7), Deposited(account_id=str(i % 7), seq=i)) for i in range(60)]
    )
    with app.running():
        wait_until(
            lambda: all(
                sum(len(v) for v in seen[g].values()) >= 60 for g in ("payments", "analytics")
            ),
            60,
            "both groups to handle 60 events",
        )
        wait_until(lambda: fully_committed(app, "payments", topic_name), 30, "commits")
    for group in ("payments", "analytics"):
        for key, seqs in seen[group].items():
            assert seqs == sorted(seqs), f"{group} key {key} out of order: {seqs}"
        assert sum(len(v) for v in seen[group].values()) == 60
    app.close()


def test_events_of_other_types_are_skipped_and_committed(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name)
    got: list[Withdrawn] = []

    @app.consumer(topic, group="withdrawals")
    def handler(e: Withdrawn) -> None:
        got.append(e)

    app.publish(topic, Deposited(account_id="1", seq=1), key="1")
    app.publish(topic, Withdrawn(account_id="1", amount=5), key="1")
    with app.running():
        wait_until(lambda: fully_committed(app, "withdrawals", topic_name), 60, "commit of both")
    assert got == [Withdrawn(account_id="1", amount=5)]
    app.close()


def test_late_group_catches_up_from_the_log(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=2)
    app.publish_many(topic, [Deposited(account_id=str(i), seq=i) for i in range(20)])
    late: list[int] = []

    @app.consumer(topic, group="late-starter")
    async def handler(e: Deposited) -> None:
        late.append(e.seq)

    with app.running():
        wait_until(lambda: len(late) >= 20, 60, "the late group to catch up")
    assert sorted(late) == list(range(20))
    app.close()


def test_offsets_are_committed_only_after_handling(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name)
    release = threading.Event()
    started = threading.Event()
    handled: list[int] = []

    @app.consumer(topic, group="slow")
    def slow(e: Deposited) -> None:
        if e.seq == 2:
            started.set()
            release.wait(30)
        handled.append(e.seq)

    app.publish_many(topic, [(None, Deposited(account_id="a", seq=i)) for i in range(5)])
    with app.running():
        wait_until(started.is_set, 60, "the slow handler to start")
        wait_until(
            lambda: (committed(app, "slow", topic_name).get(0) or 0) >= 2, 30, "commit of 0-1"
        )
        # While offset 2 is being handled, nothing at or past it may be committed.
        assert (committed(app, "slow", topic_name).get(0) or 0) == 2
        release.set()
        wait_until(lambda: committed(app, "slow", topic_name).get(0) == 5, 30, "commit of all")
    assert handled == [0, 1, 2, 3, 4]
    app.close()


def test_restart_resumes_after_the_committed_offset(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name)
    seen: list[int] = []

    @app.consumer(topic, group="resumer")
    async def handler(e: Deposited) -> None:
        seen.append(e.seq)

    app.publish_many(topic, [Deposited(account_id="x", seq=i) for i in range(3)])
    with app.running():
        wait_until(lambda: committed(app, "resumer", topic_name).get(0) == 3, 60, "first commits")
    app.publish_many(topic, [Deposited(account_id="x", seq=i) for i in range(3, 5)])
    with app.running():
        wait_until(lambda: committed(app, "resumer", topic_name).get(0) == 5, 60, "second commits")
    assert seen == [0, 1, 2, 3, 4]  # graceful stop: no redelivery
    app.close()


def test_failures_retry_then_dead_letter_and_keep_flowing(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=2)
    attempts: dict[int, list[int]] = defaultdict(list)
    handled: list[int] = []

    @app.consumer(topic, group="flaky", retry=Retry(attempts=3, backoff=0.01, jitter=False))
    async def handler(e: Deposited, ctx: Context) -> None:
        attempts[e.seq].append(ctx.attempt)
        if e.seq == 1 and ctx.attempt == 1:
            raise ConnectionError("gateway timeout")
        if e.seq == 2:
            raise ValueError("always broken")
        handled.append(e.seq)

    app.publish_many(topic, [(str(i), Deposited(account_id=str(i), seq=i)) for i in range(5)])
    app.publish(topic_name, Deposited(account_id="0", seq=99), key="0")
    # A malformed record: right type header, wrong fields.
    from tidings.records import OutgoingRecord

    app.backend.produce(
        [
            OutgoingRecord(
                topic_name,
                b"m",
                b'{"nope": 1}',
                (("ce_type", b"Deposited"), ("content-type", b"application/json")),
            )
        ]
    )
    with app.running():
        wait_until(lambda: fully_committed(app, "flaky", topic_name), 60, "all committed")
    assert sorted(handled) == [0, 1, 3, 4, 99]
    assert attempts[1] == [1, 2] and attempts[2] == [1, 2, 3]
    dlq = f"{topic_name}.flaky.dlq"
    reader = app.backend.open_consumer(None, [dlq], start="earliest", listener=None)
    letters = []
    for _ in range(100):
        letters += reader.fetch(100, 0.2)
        if len(letters) >= 2:
            break
    reader.close()
    by_reason = {dict(r.headers)["tidings-dlq-reason"].decode(): dict(r.headers) for r in letters}
    assert set(by_reason) == {"handler_error", "schema_violation"}
    h = by_reason["handler_error"]
    assert h["tidings-dlq-error-type"] == b"ValueError"
    assert h["tidings-dlq-attempts"] == b"3"
    assert h["tidings-dlq-original-topic"] == topic_name.encode()
    assert h["tidings-dlq-group"] == b"flaky"
    assert b"always broken" in h["tidings-dlq-traceback"]
    _ = TopicPartition
    app.close()
