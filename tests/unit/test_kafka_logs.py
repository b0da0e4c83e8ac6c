"""librdkafka's repeated log lines are logged once a minute, with a count of the rest."""

from __future__ import annotations

import logging

import pytest

from tidings.backends.kafka.logs import QuietLog


def test_each_distinct_line_is_logged_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    log = QuietLog(logging.getLogger("tidings.test.quiet"), every=0.2)
    caplog.set_level(logging.WARNING, logger="tidings.test.quiet")
    for attempt in range(50):
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", f"after {attempt}ms")
    log.log(logging.WARNING, "Kafka producer: %s", "1/1 brokers are down")
    assert [r.getMessage() for r in caplog.records] == [
        "FAIL [rdkafka#producer-1] after 0ms",
        "Kafka producer: 1/1 brokers are down",
    ]


def test_a_line_comes_back_after_the_window_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("tidings.backends.kafka.logs.time.monotonic", lambda: now[0])
    log = QuietLog(logging.getLogger("tidings.test.quiet2"), every=60)
    caplog.set_level(logging.INFO, logger="tidings.test.quiet2")
    for _ in range(4):
        log.log(logging.WARNING, "broker down")
    now[0] += 61
    log.log(logging.WARNING, "broker down")
    assert [r.getMessage() for r in caplog.records] == [
        "broker down",
        "broker down (3 more like it in the last 60 s)",
    ]
