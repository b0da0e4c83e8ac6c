"""A handler may outlive the broker's liveness limits without losing its partition.

Embedded: the handler runs longer than the group session timeout. Kafka: it runs 15 s with
``max.poll.interval.ms`` lowered to 10 s. Either way it finishes once, is not redelivered,
and events on other partitions are handled meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tidings import App, Context, Event


class Job(Event):
    n: int
    slow: bool = False


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_long_handler_keeps_its_partition(kind: str, tmp_path: Any, topic_name: str) -> None:
    if kind == "kafka":
        url = f"kafka://{require_kafka()}"
        options: dict[str, Any] = {
            "consumer_config": {"max.poll.interval.ms": 10_000, "session.timeout.ms": 6_000}
        }
        duration = 15.0
    else:
        url = f"embedded://{tmp_path / 'data'}"
        options = {"session_timeout": 3.0, "heartbeat_interval": 0.5}
        duration = 6.0
    app = App("long", broker=url, **options)
    topic = app.topic(topic_name, partitions=3)
    starts: list[int] = []
    done: list[tuple[int, float]] = []
    slow_running = threading.Event()

    @app.consumer(topic, group="settlement")  # the defaults: partitions independent
    def settle(e: Job, ctx: Context) -> None:
        starts.append(e.n)
        if e.slow:
            slow_running.set()
            time.sleep(duration)
        done.append((e.n, time.monotonic()))

    app.publish(topic, Job(n=0, slow=True), key="slow-key")
    with app.running():
        wait_until(slow_running.is_set, 60, "the slow handler to start")
        began = time.monotonic()
        app.publish_many(topic, [(f"key-{i}", Job(n=i)) for i in range(1, 40)])
        wait_until(lambda: any(n == 0 for n, _ in done), duration + 30, "the slow handler")
    others_meanwhile = [n for n, at in done if n != 0 and at < began + duration]
    assert others_meanwhile, "nothing else was handled while the slow handler ran"
    assert starts.count(0) == 1, "the long-running event was redelivered"
    app.close()
