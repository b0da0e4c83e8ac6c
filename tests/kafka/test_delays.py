"""Delayed delivery through the tier topics and the scheduler, on a real broker."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import wait_until
from tests.kafka.conftest import open_delay_backend
from tidings.backends.kafka.tiers import DUE, TIERS, DelayTopics, tier_for
from tidings.records import OutgoingRecord, Record, TopicSpec

pytestmark = pytest.mark.kafka


def test_tiers_never_overshoot_the_time_left(bootstrap: str) -> None:
    assert tier_for(0.05) is DUE
    assert tier_for(0.2).wait == 0.2
    assert tier_for(4.99).wait == 1
    assert tier_for(40 * 86400).wait == 7 * 86400
    assert all(tier_for(t.wait + 0.01) is t for t in TIERS)
    names = DelayTopics("ns")
    assert names.topic(DUE) == "tidings.delay.ns.due" and names.group == "tidings.scheduler.ns"
    assert names.tier_of("tidings.delay.ns.5m") is TIERS[4]


def test_delayed_records_are_never_early_and_arrive_within_a_second(
    bootstrap: str, delay_namespace: str, topic_name: str, group_name: str
) -> None:
    backend = open_delay_backend(bootstrap, delay_namespace)
    backend.ensure_topics([TopicSpec(topic_name, partitions=2)])
    consumer = backend.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    try:
        now = time.time()
        delays = {b"now": 0.0, b"a": 0.7, b"b": 2.3, b"c": 1.5}
        meta = backend.produce(
            [
                OutgoingRecord(topic_name, k, k, (("h", k),), deliver_at=now + d if d else None)
                for k, d in delays.items()
            ]
        )
        assert [m.offset >= 0 for m in meta] == [True, False, False, False]
        # Arrival times are taken by a reader of their own: listing topics below takes longer
        # than the shortest delay on a broker holding many topics.
        arrived: dict[bytes | None, tuple[Record, float]] = {}
        repeated: list[bytes | None] = []

        def read() -> None:
            deadline = time.monotonic() + 15
            while len(arrived) < len(delays) and time.monotonic() < deadline:
                for r in consumer.fetch(10, 0.05):
                    if r.key in arrived:
                        repeated.append(r.key)
                    arrived[r.key] = (r, time.time())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        before = [k for k, d in delays.items() if d and k not in arrived]
        info = next(t for t in backend.topics() if t.name == topic_name)
        after = [k for k, d in delays.items() if d and k not in arrived]
        assert len(after) <= info.delayed_pending <= len(before)
        if after:
            assert info.next_due is not None
            assert any(info.next_due == pytest.approx(now + delays[k]) for k in before)
        reader.join(20)
        assert not repeated, f"delivered twice: {repeated}"
        wait_until(  # the scheduler commits just after its forward was acknowledged
            lambda: next(t for t in backend.topics() if t.name == topic_name).delayed_pending == 0,
            5,
            "no delayed record pending",
        )
    finally:
        consumer.close()
        backend.close()
    assert set(arrived) == set(delays)
    for (key, delay), m in zip(delays.items(), meta, strict=True):
        record, at = arrived[key]
        due = now + delay
        assert at >= due, f"{key!r} arrived {due - at:.3f} s early"
        assert at - due < 1.0, f"{key!r} arrived {at - due:.3f} s late"
        assert record.headers == (("h", key),)  # routing headers stripped
        assert record.partition == m.partition


def test_delays_survive_a_restart_of_every_process(
    bootstrap: str, delay_namespace: str, topic_name: str, group_name: str
) -> None:
    first = open_delay_backend(bootstrap, delay_namespace)
    first.ensure_topics([TopicSpec(topic_name)])
    due = time.time() + 4.0
    first.produce([OutgoingRecord(topic_name, b"k", b"later", deliver_at=due)])
    consumer = first.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    try:
        # The scheduler moves it down a tier or two (until well before it is due, however
        # long joining the group took)...
        while time.time() < due - 1.5:
            assert consumer.fetch(10, 0.05) == []
    finally:
        consumer.close()
        first.close()  # ...and stops with it in flight

    second = open_delay_backend(bootstrap, delay_namespace)
    consumer = second.open_consumer(group_name, [topic_name], start="earliest", listener=None)
    try:
        got: list[Record] = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = consumer.fetch(10, 0.05)
        assert time.time() >= due
        assert [r.value for r in got] == [b"later"]
        assert consumer.fetch(10, 0.5) == []  # forwarded once
    finally:
        consumer.close()
        second.close()
