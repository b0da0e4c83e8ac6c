"""Consumer policies on every backend: concurrency, batches, timeouts, graceful shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

from tests.helpers import wait_until
from tidings import App, Batch, Context, Event, EventTooLarge, Retry


class Step(Event):
    key: str
    seq: int


class Blob(Event):
    n: int
    data: str


def committed_total(app: App, group: str, topic: str) -> int:
    for g in app.backend.groups():
        if g.group == group:
            return sum(p.committed or 0 for p in g.partitions if p.topic == topic)
    return 0


def test_concurrency_keeps_per_key_order(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url)
    topic = app.topic(topic_name, partitions=3)
    seen: dict[str, list[int]] = defaultdict(list)
    running: set[str] = set()
    overlap: list[str] = []
    peak = 0

    @app.consumer(topic, group="parallel", concurrency=20)
    async def handler(e: Step) -> None:
        nonlocal peak
        if e.key in running:
            overlap.append(e.key)
        running.add(e.key)
        peak = max(peak, len(running))
        await asyncio.sleep(0.005)
        seen[e.key].append(e.seq)
        running.discard(e.key)

    app.publish_many(topic, [(f"k{i % 30}", Step(key=f"k{i % 30}", seq=i)) for i in range(600)])
    with app.running():
        wait_until(lambda: sum(map(len, seen.values())) >= 600, 60, "600 events")
    assert not overlap, "two events of one key ran at once"
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), key
    assert peak > 1, "concurrency never exceeded 1"
    app.close()


def test_batches_respect_size_and_commit_after(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url)
    topic = app.topic(topic_name)
    sizes: list[int] = []
    got: list[int] = []

    @app.consumer(topic, group="batcher", batch=Batch(max_size=10, max_wait=0.2))
    def handler(events: list[Step]) -> None:
        sizes.append(len(events))
        got.extend(e.seq for e in events)

    app.publish_many(topic, [Step(key="a", seq=i) for i in range(35)])
    with app.running():
        wait_until(lambda: committed_total(app, "batcher", topic_name) == 35, 60, "35 committed")
    assert got == list(range(35))
    assert max(sizes) <= 10 and sum(sizes) == 35
    app.close()


def test_poison_inside_a_batch_goes_alone_to_the_dead_letters(
    broker_url: str, topic_name: str
) -> None:
    app = App("policies", broker=broker_url)
    topic = app.topic(topic_name)
    good: list[int] = []

    @app.consumer(
        topic,
        group="batch-poison",
        batch=Batch(max_size=5, max_wait=0.1),
        retry=Retry(attempts=2, backoff=0.01, jitter=False),
    )
    def handler(events: list[Step]) -> None:
        if any(e.seq == 3 for e in events):
            raise ValueError("poison 3")
        good.extend(e.seq for e in events)

    app.publish_many(topic, [Step(key="a", seq=i) for i in range(8)])
    with app.running():
        wait_until(lambda: committed_total(app, "batch-poison", topic_name) == 8, 60, "commits")
    assert sorted(good) == [0, 1, 2, 4, 5, 6, 7]
    reader = app.backend.open_consumer(
        None, [f"{topic_name}.batch-poison.dlq"], start="earliest", listener=None
    )
    letters = []
    deadline = time.monotonic() + 20
    while not letters and time.monotonic() < deadline:
        letters = reader.fetch(10, 0.2)
    reader.close()
    assert len(letters) == 1 and b'"seq":3' in (letters[0].value or b"")
    app.close()


def test_timeout_counts_as_a_failure(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url)
    topic = app.topic(topic_name)
    attempts: list[int] = []

    @app.consumer(topic, group="timeouts", timeout=0.05, retry=Retry(attempts=2, backoff=0.01))
    async def handler(e: Step, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        await asyncio.sleep(5)

    app.publish(topic, Step(key="a", seq=0), key="a")
    with app.running():
        wait_until(lambda: committed_total(app, "timeouts", topic_name) == 1, 60, "dead letter")
    assert attempts == [1, 2]
    app.close()


def test_graceful_stop_commits_exactly_what_was_handled(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url, grace=10)
    topic = app.topic(topic_name, partitions=2)
    handled: list[tuple[int, int]] = []
    lock = threading.Lock()

    @app.consumer(topic, group="graceful", concurrency=4)
    def handler(e: Step, ctx: Context) -> None:
        time.sleep(0.002)
        with lock:
            handled.append((ctx.partition, ctx.offset))

    app.publish_many(topic, [(f"k{i}", Step(key=f"k{i}", seq=i)) for i in range(3000)])
    with app.running():
        wait_until(lambda: len(handled) > 200, 60, "some progress")
    # Stopped mid-load: the commit must cover exactly the handled offsets, no gaps.
    per_partition: dict[int, set[int]] = defaultdict(set)
    for partition, offset in handled:
        per_partition[partition].add(offset)
    groups = {g.group: g for g in app.backend.groups()}
    for lag in groups["graceful"].partitions:
        if lag.topic != topic_name:
            continue
        offsets = per_partition[lag.partition]
        assert offsets == set(range(lag.committed or 0)), lag
    assert len(handled) < 3000, "the stop came too late to test anything"
    app.close()


def test_oversize_events_are_refused_before_the_broker(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url, max_event_bytes=1_000)
    topic = app.topic(topic_name)
    try:
        app.publish(topic, Step(key="x" * 2_000, seq=1))
    except EventTooLarge as exc:
        assert "max_event_bytes=1,000" in str(exc) and topic_name in str(exc)
    else:
        raise AssertionError("an oversize event was accepted")
    assert sum(next(t for t in app.backend.topics() if t.name == topic_name).end_offsets) == 0
    app.close()


def test_in_flight_bytes_are_capped(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url, max_in_flight_bytes=20_000)
    topic = app.topic(topic_name)
    release = threading.Event()
    started = threading.Event()

    @app.consumer(topic, group=f"capped-{topic_name}")
    def handler(e: Blob) -> None:
        started.set()
        release.wait(30)

    app.publish_many(topic, [Blob(n=i, data="x" * 1_000) for i in range(3_000)])
    with app.running() as runner:
        wait_until(started.is_set, 60, "the handler to start")
        time.sleep(1.0)  # fetching would run far ahead here without the cap
        stats = runner.workers[0].statistics()
        release.set()
    # One fetch (500 records) may overshoot the cap before fetching pauses; no more.
    assert stats["in_flight"] <= 520, stats
    assert stats["in_flight_bytes"] <= 20_000 + 520 * 1_100, stats
    app.close()


def test_retry_through_the_retry_topic_lets_the_key_flow(broker_url: str, topic_name: str) -> None:
    app = App("policies", broker=broker_url)
    topic = app.topic(topic_name)
    group = f"unordered-{topic_name}"
    order: list[tuple[int, int]] = []
    contexts: dict[int, tuple[str, int]] = {}

    @app.consumer(
        topic, group=group, retry=Retry(attempts=3, backoff=0.3, jitter=False, keep_order=False)
    )
    def handler(e: Step, ctx: Context) -> None:
        order.append((e.seq, ctx.attempt))
        contexts[e.seq] = (ctx.topic, ctx.offset)
        if e.seq == 0 and ctx.attempt == 1:
            raise ConnectionError("flaky once")
        if e.seq == 4:
            raise ValueError("always broken")

    app.publish_many(topic, [("same-key", Step(key="same-key", seq=i)) for i in range(6)])
    with app.running():
        wait_until(lambda: (0, 2) in order and [a for s, a in order if s == 4] == [1, 2, 3], 60,
                   "the retries")  # fmt: skip
    # Nothing waited for event 0's backoff: its key kept flowing, out of order.
    assert order.index((5, 1)) < order.index((0, 2))
    assert contexts[0] == (topic_name, 0)  # the Context shows where the event came from
    letters = []
    reader = app.backend.open_consumer(None, [f"{topic_name}.{group}.dlq"], start="earliest",
                                       listener=None)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not letters and time.monotonic() < deadline:
            letters = reader.fetch(10, 0.2)
    finally:
        reader.close()
    (letter,) = letters
    h = dict(letter.headers)
    assert h["tidings-dlq-attempts"] == b"3"
    assert h["tidings-dlq-original-topic"] == topic_name.encode()
    assert h["tidings-dlq-original-offset"] == b"4"
    assert not any(k.startswith("tidings-retry-") for k in h)
    app.close()
