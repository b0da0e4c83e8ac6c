"""Below min.insync.replicas: publishes fail clearly within the bound, then resume.

With two of three brokers down, a topic with replication 3 and min.insync.replicas=2
cannot take a write: `app.publish` must raise a tidings error naming the cause and the fix
within `delivery_timeout` (+5 s), never hang and never report success. Once one broker is
back, publishing resumes, and every event acknowledged before, during and after is stored.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import Cluster
from tidings import App, Event
from tidings.exceptions import PublishError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


class MinIsrNote(Event):
    n: int


def stored(app: App, topic: str) -> list[int]:
    """Every event on `topic`, read from the start without a group."""
    backend = app.backend
    handle = backend.open_consumer(None, [topic], start="earliest", listener=None)
    seen: list[int] = []
    try:
        quiet_until = time.monotonic() + 3
        deadline = time.monotonic() + 30
        while time.monotonic() < min(quiet_until, deadline):
            records = handle.fetch(500, 0.2)
            if records:
                quiet_until = time.monotonic() + 2
            seen += [MinIsrNote.model_validate_json(r.value or b"").n for r in records]
    finally:
        handle.close()
    return seen


def test_publishing_below_min_insync_fails_within_the_bound_then_resumes(
    cluster: Cluster, topic_name: str
) -> None:
    app = App("min-isr", broker=cluster.url)  # default delivery_timeout: 30 s
    topic = app.topic(topic_name, replication=3, config={"min.insync.replicas": "2"})
    try:
        acked = [n for n in range(50) if app.publish(topic, MinIsrNote(n=n), key="k")]
        leader = cluster.leaders(topic_name).most_common(1)[0][0]
        others = [n for n in (1, 2, 3) if n != leader]
        cluster.kill(others[0])
        cluster.kill(others[1])

        t0 = time.monotonic()
        with pytest.raises(PublishError) as failed:
            app.publish(topic, MinIsrNote(n=1000), key="k")
        took = time.monotonic() - t0
        message = str(failed.value)
        print(f"\nbelow min ISR: {type(failed.value).__name__} after {took:.1f} s: {message}")
        assert took <= 30 + 5 + 2
        assert "NOT_ENOUGH_REPLICAS" in message or "min.insync.replicas" in message

        back = cluster.restart(others[0])
        t1 = time.monotonic()
        acked += [n for n in range(50, 100) if app.publish(topic, MinIsrNote(n=n), key="k")]
        print(
            f"broker {others[0]} back in {back:.1f} s; publishing resumed, 50 more in "
            f"{time.monotonic() - t1:.1f} s"
        )
        seen = stored(app, topic_name)
    finally:
        app.close()
    assert set(acked) <= set(seen), f"lost {sorted(set(acked) - set(seen))}"
    assert [n for n in seen if n != 1000] == acked  # in order; the failed one may be stored
