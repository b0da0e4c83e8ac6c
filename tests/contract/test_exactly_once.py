"""exactly_once=True on every backend: outputs and offsets are committed together.

In-process behaviour (failed attempts leave no output, dead letters and retry records go
with the commit, a transaction for partitions a member does not own is refused and leaves
nothing behind). The SIGKILL tests live in tests/scenarios/test_exactly_once_kills.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tidings import App, Context, Event, Retry
from tidings.backends.base import Backend
from tidings.exceptions import ConfigurationError, ConsumerFailed, TransactionAborted
from tidings.records import OutgoingRecord, Record, TopicPartition, TopicSpec
from tidings.runtime.dead_letters import dlq_topic


class CtpOrder(Event):
    n: int
    key: str


class CtpShipped(Event):
    n: int


def read_all(
    backend: Backend, topic: str, at_least: int = 0, timeout: float = 20.0
) -> list[Record]:
    """Read `topic` from the beginning without a group (read_committed on Kafka)."""
    handle = backend.open_consumer(None, [topic], start="earliest", listener=None)
    out: list[Record] = []
    try:
        wait_until(
            lambda: bool(out.extend(handle.fetch(1000, 0.2))) or len(out) >= at_least,
            timeout,
            f"{at_least} records on {topic}",
        )
        out.extend(handle.fetch(1000, 0.3))  # anything more (duplicates) shows up here
    finally:
        handle.close()
    return out


def test_outputs_are_written_once_with_the_commit(broker_url: str, topic_name: str) -> None:
    """Failed attempts publish nothing; retries (in place and via the retry topic) and dead
    letters each leave exactly one record; every output is in input order per key."""
    app = App("eos", broker=broker_url)
    src = app.topic(topic_name, partitions=2)
    out = app.topic(f"{topic_name}-out", partitions=2)
    attempts: Counter[int] = Counter()
    lock = threading.Lock()

    @app.consumer(
        src,
        group=f"{topic_name}-ship",
        exactly_once=True,
        retry=Retry(attempts=2, backoff=0.01, keep_order=False),
    )
    async def ship(e: CtpOrder, ctx: Context) -> None:
        with lock:
            attempts[e.n] += 1
            first = attempts[e.n] == 1
        await ctx.publish_async(out, CtpShipped(n=e.n), key=e.key)
        if e.n % 10 == 3 and first:
            raise RuntimeError("flaky")  # its output must not survive this attempt
        if e.n == 7:
            raise ValueError("poison")  # dead-lettered after 2 attempts

    n = 40
    app.publish_many(src, [(f"k{i % 4}", CtpOrder(n=i, key=f"k{i % 4}")) for i in range(n)])
    try:
        with app.running():
            wait_until(lambda: len(attempts) == n and attempts[7] >= 2, 30, "every order")
            records = read_all(app.backend, out.name, at_least=n - 1)
            dead = read_all(app.backend, dlq_topic(src.name, f"{topic_name}-ship"), at_least=1)
    finally:
        app.close()
    shipped = [CtpShipped.model_validate_json(r.value or b"").n for r in records]
    assert Counter(shipped) == Counter(i for i in range(n) if i != 7)
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for r, s in zip(records, shipped, strict=True):
        by_key[r.key].append(s)
    for key, seqs in by_key.items():  # retried events come back later, the rest in order
        first_pass = [s for s in seqs if s % 10 != 3]
        assert first_pass == sorted(first_pass), f"key {key!r} out of order: {seqs}"
    assert len(dead) == 1


def test_a_transaction_for_partitions_not_owned_is_refused_and_invisible(
    broker_url: str, topic_name: str
) -> None:
    app = App("eos", broker=broker_url)
    src = app.topic(topic_name, partitions=1)
    out = app.topic(f"{topic_name}-out", partitions=1)
    backend = app.backend
    backend.ensure_topics([src, out])
    try:
        handle = backend.open_consumer(
            f"{topic_name}-g", [src.name], start="earliest", listener=None
        )
        wait_until(lambda: (handle.fetch(10, 0.1), bool(handle.assignment()))[1], 30, "assignment")
        record = OutgoingRecord(out.name, b"k", b"{}", (), None, None)
        with pytest.raises(TransactionAborted):
            handle.commit_transaction([record], {TopicPartition("not-mine", 0): 1})
        handle.commit_transaction([record], {TopicPartition(src.name, 0): 0})
        handle.close()
        with pytest.raises(TransactionAborted):
            handle.commit_transaction([record], {TopicPartition(src.name, 0): 0})
        assert len(read_all(backend, out.name, at_least=1)) == 1
    finally:
        app.close()


def test_exactly_once_refuses_batches_and_mixed_groups() -> None:
    from tidings import Batch

    app = App("eos", broker="memory://eos-refusals")
    with pytest.raises(ConfigurationError, match="exactly_once=True does not support batch="):

        @app.consumer("a", group="g", exactly_once=True, batch=Batch(max_size=10))
        def batched(events: list[CtpOrder]) -> None: ...

    @app.consumer("a", group="g", exactly_once=True)
    def one(e: CtpOrder) -> None: ...

    with pytest.raises(ConfigurationError, match="Set the same exactly_once"):

        @app.consumer("b", group="g")
        def other(e: CtpOrder) -> None: ...

    app.close()


def test_an_expired_embedded_member_commits_nothing(tmp_path: Path, topic_name: str) -> None:
    """A member that stopped heartbeating (a zombie) was replaced: its transaction, outputs
    and offsets alike, is refused after its successor committed (embedded store)."""
    from tidings.backends.embedded import EmbeddedBackend

    path = tmp_path / "data"
    url = f"embedded://{path}"
    zombie_side = EmbeddedBackend(path, url=url, session_timeout=0.5, heartbeat_interval=0.1)
    other_side = EmbeddedBackend(path, url=url, session_timeout=0.5, heartbeat_interval=0.1)
    src, out = topic_name, f"{topic_name}-out"

    zombie_side.ensure_topics([TopicSpec(src, partitions=1), TopicSpec(out, partitions=1)])
    tp = TopicPartition(src, 0)
    rec = lambda v: OutgoingRecord(out, b"k", v, (), None, None)  # noqa: E731
    zombie = zombie_side.open_consumer("g", [src], start="earliest", listener=None)
    try:
        wait_until(lambda: (zombie.fetch(10, 0.05), bool(zombie.assignment()))[1], 10, "owner")
        zombie.commit_transaction([rec(b"1")], {tp: 1})
        successor = other_side.open_consumer("g", [src], start="earliest", listener=None)
        wait_until(
            lambda: (successor.fetch(10, 0.05), bool(successor.assignment()))[1], 10, "takeover"
        )
        successor.commit_transaction([rec(b"2")], {tp: 2})
        with pytest.raises(TransactionAborted, match="no longer owns"):
            zombie.commit_transaction([rec(b"3")], {tp: 3})
        assert [r.value for r in read_all(other_side, out, at_least=2)] == [b"1", b"2"]
        (info,) = [g for g in other_side.groups() if g.group == "g"]
        assert [p.committed for p in info.partitions if p.topic == src] == [2]
        successor.close()
    finally:
        zombie_side.close()
        other_side.close()


def test_outputs_stay_exactly_once_across_a_rebalance(broker_url: str, topic_name: str) -> None:
    """A second member joins mid-run: the first commits what it finished on revocation
    (outputs with offsets), the second carries on from there; no output twice or missing,
    per-key order held."""
    first = App("eos", broker=broker_url, status_interval=None)
    second = App("eos", broker=broker_url, status_interval=None)
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def register(app: App, member: str) -> None:
        src = app.topic(topic_name, partitions=4)
        out = app.topic(f"{topic_name}-out", partitions=4)

        @app.consumer(src, group=f"{topic_name}-ship", exactly_once=True)
        async def ship(e: CtpOrder, ctx: Context) -> None:
            with lock:
                seen.append((member, e.n))
                joined = any(m == "second" for m, _ in seen)
            await asyncio.sleep(0.001 if joined else 0.02)  # slow until the second joined
            await ctx.publish_async(out, CtpShipped(n=e.n), key=e.key)

    register(first, "first")
    register(second, "second")
    n = 800
    src = first.topics[topic_name]
    first.publish_many(src, [(f"k{i % 8}", CtpOrder(n=i, key=f"k{i % 8}")) for i in range(n)])
    try:
        with first.running():
            wait_until(lambda: len(seen) >= 20, 30, "the first member to get going")
            with second.running():
                wait_until(lambda: len({s[1] for s in seen}) == n, 60, "every order handled")
                records = read_all(first.backend, f"{topic_name}-out", at_least=n)
    finally:
        first.close()
        second.close()
    assert {m for m, _ in seen} == {"first", "second"}, "no rebalance happened mid-run"
    shipped = [(r.key, CtpShipped.model_validate_json(r.value or b"").n) for r in records]
    counts = Counter(s for _, s in shipped)
    assert sorted(counts) == list(range(n)), "lost outputs"
    assert not {k: c for k, c in counts.items() if c > 1}, "outputs written twice"
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for key, s in shipped:
        by_key[key].append(s)
    for key, order in by_key.items():
        assert order == sorted(order), f"key {key!r} out of order"


def test_a_delayed_follow_up_is_written_once_with_the_commit(
    broker_url: str, topic_name: str
) -> None:
    options: dict[str, object] = {"status_interval": None}
    if broker_url.startswith("kafka://"):  # delay topics and scheduler of this test's own
        options["delay_namespace"] = topic_name.replace("-", "")
    app = App("eos", broker=broker_url, **options)  # type: ignore[arg-type]
    src = app.topic(topic_name, partitions=1)
    out = app.topic(f"{topic_name}-out", partitions=1)
    sent: list[float] = []

    @app.consumer(src, group=f"{topic_name}-later", exactly_once=True)
    async def later(e: CtpOrder, ctx: Context) -> None:
        sent.append(time.time())
        await ctx.publish_async(out, CtpShipped(n=e.n), key=e.key, delay=timedelta(seconds=1))

    app.publish(src, CtpOrder(n=1, key="k"), key="k")
    try:
        with app.running():
            records = read_all(app.backend, out.name, at_least=1)
    finally:
        app.close()
    assert [CtpShipped.model_validate_json(r.value or b"").n for r in records] == [1]
    assert records[0].timestamp >= sent[0] + 0.9


def test_a_follow_up_the_broker_refuses_stops_the_app_and_commits_nothing(
    broker_url: str, topic_name: str
) -> None:
    """A follow-up to a topic that does not exist cannot be committed, ever: rather than
    retrying the transaction forever (or skipping the event), the app stops with
    ConsumerFailed naming the topic, and the event's offset stays uncommitted."""
    app = App("eos", broker=broker_url, status_interval=None)
    src = app.topic(topic_name, partitions=1)

    @app.consumer(src, group=f"{topic_name}-g", exactly_once=True)
    async def forward(e: CtpOrder, ctx: Context) -> None:
        await ctx.publish_async(f"{topic_name}-nowhere", CtpShipped(n=e.n), key=e.key)

    app.publish(src, CtpOrder(n=1, key="k"), key="k")
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            asyncio.run(asyncio.wait_for(app.serve(), 60))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    try:
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "the app kept retrying a transaction that cannot commit"
        (error,) = outcome
        assert isinstance(error, ConsumerFailed), repr(error)
        assert f"{topic_name}-nowhere" in str(error.__cause__)
        committed = [
            p.committed
            for g in app.backend.groups()
            if g.group == f"{topic_name}-g"
            for p in g.partitions
        ]
        assert committed in ([], [None], [0])
    finally:
        app.close()


@pytest.mark.parametrize("downstream_exactly_once", [False, True])
def test_a_group_reading_a_transactional_topic_catches_up_to_lag_zero(
    broker_url: str, topic_name: str, downstream_exactly_once: bool
) -> None:
    """On Kafka each transaction leaves a commit marker after its records, at an offset no
    reader sees; a downstream group that handled everything must still commit past it, or
    it shows lag 1 per partition forever (and looks stalled)."""
    app = App("eos-lag", broker=broker_url)
    src = app.topic(topic_name, partitions=2)
    out = app.topic(f"{topic_name}-out", partitions=2)
    seen: set[int] = set()

    @app.consumer(src, group=f"{topic_name}-ship", exactly_once=True)
    async def ship(e: CtpOrder, ctx: Context) -> None:
        await ctx.publish_async(out, CtpShipped(n=e.n), key=e.key)

    @app.consumer(out, group=f"{topic_name}-bill", exactly_once=downstream_exactly_once)
    async def bill(e: CtpShipped) -> None:
        seen.add(e.n)

    n = 30
    app.publish_many(src, [(f"k{i % 5}", CtpOrder(n=i, key=f"k{i % 5}")) for i in range(n)])

    def downstream_lag() -> int | None:
        infos = [g for g in app.backend.groups() if g.group == f"{topic_name}-bill"]
        return infos[0].lag if infos and infos[0].partitions else None

    try:
        with app.running():
            wait_until(lambda: len(seen) == n, 30, "every output handled downstream")
            wait_until(lambda: downstream_lag() == 0, 15, "the downstream group at lag 0")
    finally:
        app.close()
