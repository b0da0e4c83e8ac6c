"""At the default settings a slow handler holds back its own partition only.

DESIGN section 5: partitions flow independently at the defaults. Each partition's events
run one at a time in offset order; other partitions keep flowing meanwhile, for async and
plain `def` handlers alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterator

import pytest

from tests.helpers import wait_until
from tidings import App, Context, Event
from tidings.partitioner import partition_for


class LaneStep(Event):
    key: str
    seq: int


@pytest.fixture
def app(broker_url: str) -> Iterator[App]:
    app = App("lanes", broker=broker_url)
    yield app
    app.close()


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_slow_handler_holds_back_only_its_partition_at_the_defaults(
    app: App, topic_name: str, kind: str
) -> None:
    partitions = 3
    topic = app.topic(topic_name, partitions=partitions)
    release = threading.Event()
    slow_started = threading.Event()
    lock = threading.Lock()
    seen: dict[int, list[int]] = defaultdict(list)
    running: dict[int, int] = defaultdict(int)
    overlaps: list[int] = []

    def enter(e: LaneStep, ctx: Context) -> None:
        with lock:
            running[ctx.partition] += 1
            if running[ctx.partition] > 1:
                overlaps.append(ctx.partition)

    def leave(e: LaneStep, ctx: Context) -> None:
        with lock:
            running[ctx.partition] -= 1
            seen[ctx.partition].append(e.seq)

    if kind == "async":

        @app.consumer(topic, group="lanes")
        async def handle(e: LaneStep, ctx: Context) -> None:
            enter(e, ctx)
            if e.key == "slow":
                slow_started.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            leave(e, ctx)

    else:

        @app.consumer(topic, group="lanes")
        def handle_sync(e: LaneStep, ctx: Context) -> None:
            enter(e, ctx)
            if e.key == "slow":
                slow_started.set()
                release.wait(60)
            leave(e, ctx)

    slow_partition = partition_for(b"slow", partitions)
    keys = [f"k{i}" for i in range(30)]
    others = [k for k in keys if partition_for(k.encode(), partitions) != slow_partition]
    app.publish(topic, LaneStep(key="slow", seq=0), key="slow")
    app.publish_many(topic, [(k, LaneStep(key=k, seq=i + 1)) for i, k in enumerate(keys)])
    with app.running():
        try:
            wait_until(slow_started.is_set, 60, "the slow handler to start")
            wait_until(
                lambda: sum(len(v) for p, v in seen.items() if p != slow_partition) == len(others),
                20,
                "the other partitions while one handler is slow",
            )
            assert not seen[slow_partition], "an event ran past the slow one in its partition"
        finally:
            release.set()
        wait_until(lambda: sum(map(len, seen.values())) == len(keys) + 1, 60, "the rest")
    assert not overlaps, f"two events of one partition ran at once: {overlaps}"
    for partition, seqs in seen.items():
        assert seqs == sorted(seqs), f"partition {partition} out of order: {seqs}"
