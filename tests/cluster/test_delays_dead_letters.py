"""Delays and dead letters across a leader failover on a 3-broker cluster.

`App(replication=3)` makes the delay tiers and the dead-letter topic 3-way replicated with
min.insync.replicas=2. Delayed events are published, the broker leading most of the tier
and target partitions is SIGKILLed while they wait, and events that fail for good are
published during the failover, as are events retried through the group's retry topic
(`Retry(keep_order=False)`). Each delayed event must be handled exactly once and never
before it is due; every dead letter must be on the dead-letter topic afterwards, and every
retried event handled once more.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from tests.cluster.conftest import Cluster
from tests.helpers import wait_until
from tidings import App, Context, Event, Retry
from tidings.backends.kafka.tiers import DUE, TIERS, DelayTopics

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

DELAYED = 300


class ClusterReminder(Event):
    n: int
    due: float


class ClusterPoison(Event):
    n: int


class ClusterFlaky(Event):
    n: int


def read_all(app: App, topic: str, want: int, timeout: float = 60) -> list[bytes]:
    """Values on `topic` from its start, read without a group, until `want` are seen."""
    handle = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < want and time.monotonic() < deadline:
            values += [r.value or b"" for r in handle.fetch(500, 0.2)]
    finally:
        handle.close()
    return values


def test_delays_and_dead_letters_survive_a_failover(cluster: Cluster, topic_name: str) -> None:
    namespace = f"c{uuid.uuid4().hex[:8]}"
    app = App("late", broker=cluster.url, replication=3, delay_namespace=namespace)
    topic = app.topic(topic_name, partitions=3)
    handled: list[tuple[int, float, float]] = []  # (n, due, handled at)
    lock = threading.Lock()

    @app.consumer(topic, group="reminders", retry=Retry(attempts=2, backoff=0.1))
    def remind(event: ClusterReminder | ClusterPoison) -> None:
        if isinstance(event, ClusterPoison):
            raise ValueError(f"poison {event.n}")
        with lock:
            handled.append((event.n, event.due, time.time()))

    retried: list[int] = []

    @app.consumer(topic, group="retrier", retry=Retry(keep_order=False, backoff=0.5))
    def once_more(event: ClusterFlaky, ctx: Context) -> None:
        if ctx.attempt == 1:  # back through <topic>.retrier.retry and a delay tier
            raise ValueError(f"flaky {event.n}")
        with lock:
            retried.append(event.n)

    names = DelayTopics(namespace)
    try:
        with app.running():
            for batch in range(10):  # due 4-13 s from now, in ten groups
                delay = 4 + batch
                start = time.time()
                app.publish_many(
                    topic,
                    [
                        (f"k{n}", ClusterReminder(n=n, due=start + delay))
                        for n in range(batch * DELAYED // 10, (batch + 1) * DELAYED // 10)
                    ],
                    delay=timedelta(seconds=delay),
                )
            tiers = [names.topic(t) for t in (DUE, *TIERS)]
            leaders = sum((cluster.leaders(t) for t in [topic_name, *tiers]), Counter())
            busiest = leaders.most_common(1)[0][0]
            cluster.kill(cluster.node_of(busiest))
            for n in range(5):  # handled, retried and dead-lettered during the failover
                app.publish(topic, ClusterPoison(n=n), key=f"p{n}")
                app.publish(topic, ClusterFlaky(n=n), key=f"f{n}")
            time.sleep(5)  # the tier heads wait out the outage with a broker down
            back_in = cluster.restart(cluster.node_of(busiest))
            wait_until(lambda: len(handled) >= DELAYED, 90, "every delayed event")
            wait_until(lambda: len(set(retried)) == 5, 30, "every retried event")
            dead = read_all(app, f"{topic_name}.reminders.dlq", 5)
            time.sleep(2)  # a duplicate forward would arrive by now
        admin = cluster.admin()
        made = [*tiers, f"{topic_name}.reminders.dlq", f"{topic_name}.retrier.retry", topic_name]
        md = admin.metadata()
        configs = admin.topic_configs(made)
        for name in made:  # what App(replication=3) gave the topics tidings made itself
            assert {len(p.replicas) for p in md.topics[name].partitions.values()} == {3}, name
            assert configs[name]["min.insync.replicas"].value == "2", name
    finally:
        app.close()

    counts = Counter(n for n, _, _ in handled)
    early = [(n, round(due - at, 3)) for n, due, at in handled if at < due]
    late = max(at - due for _, due, at in handled)
    print(
        f"\ndelays across failover: {DELAYED} delayed, broker {busiest} killed (led "
        f"{leaders[busiest]} partitions), back in {back_in:.1f} s; handled {len(counts)}, "
        f"duplicates {sum(c - 1 for c in counts.values())}, early {len(early)}, latest "
        f"{late:.1f} s after due; dead letters {len(dead)}; retried through the retry topic "
        f"{sorted(retried)}"
    )
    assert not early, f"delivered before due: {early[:5]}"
    assert sorted(counts) == list(range(DELAYED))
    assert all(c == 1 for c in counts.values()), counts.most_common(3)
    assert sorted(ClusterPoison.model_validate_json(v).n for v in dead) == list(range(5))
    assert sorted(retried) == list(range(5))
