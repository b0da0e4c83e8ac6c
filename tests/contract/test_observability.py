"""Metrics and health endpoints on every backend: counters equal what the handlers saw."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until
from tidings import App, Event, Retry
from tidings.instrumentation.http import start_http


class ObservedJob(Event):
    n: int


class ObservedNoise(Event):
    n: int


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **want: str
) -> float:
    return sum(
        v
        for (n, labels), v in scraped.items()
        if n == name and all(dict(labels).get(k) == x for k, x in want.items())
    )


def test_metrics_count_what_the_handlers_saw(broker_url: str, topic_name: str) -> None:
    app = App("observed", broker=broker_url)
    topic = app.topic(topic_name, partitions=2)
    calls: list[tuple[int, bool]] = []
    failed_once: set[int] = set()
    lock = threading.Lock()

    @app.consumer(topic, group="workers", retry=Retry(attempts=2, backoff=0.01))
    async def handler(e: ObservedJob) -> None:
        with lock:
            if e.n == 5 or (e.n % 3 == 0 and e.n not in failed_once):
                failed_once.add(e.n)
                calls.append((e.n, False))
                raise ValueError(f"job {e.n} failed")
            calls.append((e.n, True))

    server = start_http(app.listeners, ["workers"], "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with app.running():
            app.publish_many(topic, [(str(i), ObservedJob(n=i)) for i in range(10)])
            app.publish(topic, ObservedNoise(n=1), key="x")
            app.publish(topic, ObservedJob(n=10), key="10", delay=timedelta(milliseconds=100))
            wait_until(lambda: get(base + "/readyz")[0] == 200, 30, "/readyz 200")
            wait_until(lambda: sum(ok for _, ok in calls) == 10, 60, "10 jobs handled")

            def settled() -> bool:
                s = samples(get(base + "/metrics")[1])
                return (
                    total(s, "tidings_dead_letters_total") == 1
                    and total(s, "messaging_client_consumed_messages_total", outcome="skip") == 1
                )

            wait_until(settled, 30, "the dead letter and the skip counted")
            status, text = get(base + "/metrics")
            assert status == 200
            assert get(base + "/livez")[0] == 200
        scraped = samples(text)
    finally:
        server.close()
        app.close()
    ok = sum(1 for _, good in calls if good)
    failures = sum(1 for _, good in calls if not good)
    g = {"messaging_consumer_group_name": "workers", "messaging_destination_name": topic_name}
    consumed = "messaging_client_consumed_messages_total"
    assert total(scraped, consumed, outcome="ack", **g) == ok == 10
    assert total(scraped, consumed, outcome="dead_letter", **g) == 1
    assert total(scraped, "messaging_process_duration_seconds_count", **g) == len(calls)
    assert total(scraped, "messaging_process_duration_seconds_count", outcome="error") == failures
    assert total(scraped, "tidings_retries_total", **g) == failures - 1  # job 5's last is final
    assert total(scraped, "tidings_dead_letters_total", reason="handler_error", **g) == 1
    sent = total(
        scraped, "messaging_client_sent_messages_total", messaging_destination_name=topic_name
    )
    assert sent == 12
    assert total(scraped, "messaging_client_operation_duration_seconds_count") == 3
    assert ("tidings_delayed_pending", ()) in scraped
    assert total(scraped, "tidings_in_flight_events", messaging_consumer_group_name="workers") == 0


def test_livez_stays_200_through_a_long_handler(broker_url: str, topic_name: str) -> None:
    app = App("observed", broker=broker_url)
    topic = app.topic(topic_name)
    started, release = threading.Event(), threading.Event()

    @app.consumer(topic, group="slow")
    async def handler(e: ObservedJob) -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.05)

    server = start_http(app.listeners, ["slow"], "127.0.0.1", 0)
    server.health.limit = 1.0  # a poll loop held by the handler would fail this at once
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with app.running():
            app.publish(topic, ObservedJob(n=1))
            wait_until(started.is_set, 30, "the handler started")
            statuses = []
            for _ in range(10):
                statuses.append(get(base + "/livez")[0])
                release.wait(0.25)
            release.set()
        assert statuses == [200] * 10
        assert get(base + "/readyz")[0] == 503  # stopped: not ready
    finally:
        server.close()
        app.close()
