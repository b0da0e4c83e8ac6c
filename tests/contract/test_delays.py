"""Delayed delivery on every backend: never early, prompt after due, survives restarts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import wait_until
from tidings import App, Context, Event

LATENESS = {"memory": 0.25, "embedded": 0.25, "kafka": 1.0}


class Reminder(Event):
    n: int


def kind_of(url: str) -> str:
    return url.split("://")[0]


@pytest.mark.slow
def test_delayed_events_are_never_early_and_arrive_promptly(
    broker_url: str, topic_name: str
) -> None:
    app = App("delays", broker=broker_url)
    topic = app.topic(topic_name, partitions=2)
    arrived: dict[int, tuple[float, float]] = {}

    @app.consumer(topic, group="reminders")
    async def handler(e: Reminder, ctx: Context) -> None:
        due = float(ctx.headers["tidings-deliver-at"])
        arrived[e.n] = (time.time(), due)

    with app.running():
        time.sleep(0.5)  # let the group settle so lateness measures delivery, not joining
        published = []
        for n in range(8):
            delay = timedelta(seconds=1 + (n % 4))  # 1 s to 4 s
            key = f"k{n}"
            if n % 2:
                published.append(app.publish(topic, Reminder(n=n), key=key, delay=delay))
            else:
                when = datetime.now(UTC) + delay
                published.append(app.publish(topic, Reminder(n=n), key=key, at=when))
        assert all(p.offset == -1 and p.deliver_at for p in published)
        wait_until(lambda: len(arrived) == 8, 30, "8 delayed events")
    bound = LATENESS[kind_of(broker_url)]
    for n, (at, due) in arrived.items():
        assert at >= due, f"event {n} arrived {due - at:.3f} s early"
        assert at - due <= bound, f"event {n} arrived {at - due:.3f} s late (bound {bound} s)"
    app.close()


@pytest.mark.slow
def test_delayed_events_survive_a_restart_of_every_worker(broker_url: str, topic_name: str) -> None:
    if kind_of(broker_url) == "memory":
        pytest.skip("the memory backend lives and dies with its process; nothing to restart")
    app = App("delays", broker=broker_url)
    topic = app.topic(topic_name)
    got: list[int] = []

    @app.consumer(topic, group="survivor")
    async def handler(e: Reminder) -> None:
        got.append(e.n)

    with app.running():
        app.publish_many(topic, [Reminder(n=n) for n in range(5)], delay=timedelta(seconds=2))
        time.sleep(0.5)
    app.close()  # every process of the app is gone before the events are due
    time.sleep(2.0)
    restarted = App("delays", broker=broker_url)
    restarted.topic(topic_name)
    restarted.consumers = app.consumers
    with restarted.running():
        wait_until(lambda: len(got) == 5, 30, "5 delayed events after the restart")
    assert sorted(got) == list(range(5))
    restarted.close()
