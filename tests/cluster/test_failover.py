"""Leader failover on a 3-broker cluster: nothing acknowledged is lost, per-key order holds.

A topic with replication 3 and min.insync.replicas=2; two groups consume while a publisher
publishes; the broker leading most partitions is SIGKILLed mid-stream and started again
later. Every event whose publish returned must be handled by each group, each key's events
in publish order (redeliveries allowed, counted and printed).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from itertools import pairwise

import pytest

from tests.cluster.conftest import Cluster
from tests.helpers import wait_until
from tidings import App, Context, Event
from tidings.exceptions import PublishError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

EVENTS = 20_000
KEYS = 200
CHUNK = 100
RATE = 1_000  # events/s: the stream lasts ~20 s, so the kill lands mid-stream


class FailoverTick(Event):
    key: str
    seq: int


class Handled:
    """What one group handled: (key, seq) in handling order, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: dict[str, list[int]] = defaultdict(list)
        self.times: list[float] = []

    def add(self, event: FailoverTick) -> None:
        with self.lock:
            self.order[event.key].append(event.seq)
            self.times.append(time.monotonic())

    def distinct(self) -> int:
        with self.lock:
            return sum(len(set(s)) for s in self.order.values())


def check_order(name: str, handled: Handled, acked: dict[str, int]) -> int:
    """Assert nothing acknowledged is missing and no key ever skips ahead; return duplicates."""
    duplicates = 0
    for key, last in acked.items():
        seqs = handled.order.get(key, [])
        seen: set[int] = set()
        for s in seqs:
            assert s == 0 or s - 1 in seen, f"{name}: key {key} handled seq {s} before {s - 1}"
            duplicates += s in seen
            seen.add(s)
        missing = set(range(last + 1)) - seen
        assert not missing, f"{name}: key {key} lost acknowledged seqs {sorted(missing)[:10]}"
    return duplicates


def largest_gap(times: list[float], after: float) -> float:
    later = sorted(t for t in times if t >= after - 1)
    return max((b - a for a, b in pairwise(later)), default=0.0)


def test_killing_the_busiest_leader_loses_nothing(cluster: Cluster, topic_name: str) -> None:
    app = App("failover", broker=cluster.url)
    topic = app.topic(topic_name, partitions=6, replication=3, config={"min.insync.replicas": "2"})
    groups = {"alpha": Handled(), "beta": Handled()}

    @app.consumer(topic, group="alpha", concurrency=8)
    async def alpha(event: FailoverTick) -> None:
        groups["alpha"].add(event)

    @app.consumer(topic, group="beta")
    async def beta(event: FailoverTick, ctx: Context) -> None:
        groups["beta"].add(event)

    acked: dict[str, int] = {}  # key -> last seq whose publish returned
    publish_times: list[float] = []
    failures: list[str] = []

    def publisher() -> None:
        seq = 0
        start = time.monotonic()
        while seq * KEYS < EVENTS:
            items = [(f"k{k}", FailoverTick(key=f"k{k}", seq=seq)) for k in range(KEYS)]
            for i in range(0, KEYS, CHUNK):
                while True:  # a failed publish is sent again: at least once, in order
                    try:
                        app.publish_many(topic, items[i : i + CHUNK])
                        break
                    except PublishError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                for key, _ in items[i : i + CHUNK]:
                    acked[key] = seq
                publish_times.append(time.monotonic())
                pace = start + (seq * KEYS + i + CHUNK) / RATE - time.monotonic()
                if pace > 0:
                    time.sleep(pace)
            seq += 1

    try:
        with app.running():
            thread = threading.Thread(target=publisher, daemon=True)
            thread.start()
            wait_until(lambda: len(publish_times) * CHUNK >= EVENTS // 4, 60, "a quarter sent")
            leaders = cluster.leaders(topic_name)
            led = max(leaders.values())
            # Of the brokers leading the most partitions, prefer a group coordinator, so
            # the runtime's commits have to find the new coordinator too.
            coordinators = cluster.coordinators(["alpha", "beta"])
            busiest = max(
                (b for b, n in leaders.items() if n == led), key=lambda b: b in coordinators
            )
            killed_at = time.monotonic()
            cluster.kill(cluster.node_of(busiest))
            wait_until(lambda: len(publish_times) * CHUNK >= EVENTS // 2, 90, "half sent")
            back_in = cluster.restart(cluster.node_of(busiest))
            thread.join(120)
            assert not thread.is_alive(), "the publisher did not finish within 120 s"
            total = sum(last + 1 for last in acked.values())
            for name, handled in groups.items():
                wait_until(lambda h=handled: h.distinct() >= total, 90, f"{name} caught up")
    finally:
        app.close()

    duplicates = {name: check_order(name, h, acked) for name, h in groups.items()}
    coordinated = sorted(g for g, b in coordinators.items() if b == busiest)
    print(
        f"\nfailover: {total:,} events acknowledged, broker {busiest} (leading {led} of 6 "
        f"partitions, coordinator of groups {coordinated}) SIGKILLed, back in {back_in:.1f} s; "
        f"lost 0; duplicates {duplicates}; "
        f"publish failures {len(failures)}; longest publish stall "
        f"{largest_gap(publish_times, killed_at):.1f} s; longest handling gap "
        + ", ".join(f"{n} {largest_gap(h.times, killed_at):.1f} s" for n, h in groups.items())
    )
    for failure in failures[:5]:
        print("  publish failure:", failure[:300])
    assert total == EVENTS
