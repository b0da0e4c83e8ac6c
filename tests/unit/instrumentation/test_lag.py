"""Group status over a window of observations (Burrow's rules) and lag in seconds."""

from __future__ import annotations

from tidings.instrumentation.lag import (
    LagMonitor,
    Observation,
    Status,
    evaluate,
    lag_seconds,
    worst,
)
from tidings.records import TopicPartition

TP = TopicPartition("orders", 0)


def window(*points: tuple[int, int]) -> list[Observation]:
    return [Observation(float(i), committed, end) for i, (committed, end) in enumerate(points)]


def test_caught_up_is_ok() -> None:
    assert evaluate(window(*[(10, 10)] * 6)) is Status.OK


def test_lag_without_any_commit_across_the_window_is_stalled() -> None:
    assert evaluate(window(*[(10, 15)] * 6)) is Status.STALLED


def test_commits_moving_but_lag_growing_is_lagging() -> None:
    assert evaluate(window((10, 12), (11, 14), (12, 16), (13, 18), (14, 20))) is Status.LAGGING


def test_commits_moving_and_lag_shrinking_or_steady_is_ok() -> None:
    assert evaluate(window((10, 20), (12, 21), (14, 22), (16, 22), (18, 22))) is Status.OK
    assert evaluate(window((10, 12), (12, 14), (14, 16), (16, 18), (18, 20))) is Status.OK


def test_a_short_window_is_not_a_trend() -> None:
    assert evaluate(window((10, 12), (10, 30))) is Status.OK


def test_stopped_on_purpose_wins() -> None:
    assert evaluate(window(*[(10, 10)] * 6), stopped=True) is Status.STOPPED
    assert worst([Status.OK, Status.STOPPED, Status.STALLED]) is Status.STOPPED
    assert worst([Status.OK, Status.LAGGING]) is Status.LAGGING
    assert worst([]) is Status.OK


def test_monitor_keeps_only_the_window() -> None:
    monitor = LagMonitor(window=10.0)
    for t in range(30):
        monitor.observe("g", TP, 5, 9, float(t))
    assert monitor.status("g", TP) is Status.STALLED
    monitor.observe("g", TP, 9, 9, 30.0)
    assert monitor.status("g", TP) is Status.OK
    monitor.forget([])
    assert monitor.status("g", TP) is Status.OK


def test_lag_seconds_is_the_age_of_the_oldest_unhandled_event() -> None:
    assert lag_seconds(5, 9, 100.0, 130.0) == 30.0
    assert lag_seconds(9, 9, 100.0, 130.0) == 0.0
    assert lag_seconds(5, 9, None, 130.0) == 0.0


def test_lag_seconds_are_read_after_the_heads_so_new_events_never_show_age_0() -> None:
    """A dashboard once showed lag 10 with 0.0 s: the time was read before the record at
    the committed offset, so events published meanwhile looked younger than now (age < 0,
    shown as 0). The evaluator reads the time last; here time moves on during the read."""
    import time
    import uuid

    from tidings.backends.base import GroupInfo, PartitionLag
    from tidings.backends.registry import open_backend
    from tidings.instrumentation.lag import GroupEvaluator
    from tidings.records import OutgoingRecord, TopicSpec

    backend = open_backend(f"memory://{uuid.uuid4().hex}")
    try:
        backend.ensure_topics([TopicSpec("orders", partitions=1)])
        backend.produce([OutgoingRecord("orders", b"k", b"v", partition=0)] * 10)
        before = time.time() - 5.0  # the time a sampler would have read before the heads
        evaluator = GroupEvaluator(backend, samples=6, clock=lambda: before)
        evaluator.clock = lambda: before if not evaluator.heads._cache else time.time()
        info = GroupInfo("g", "Stable", (), (PartitionLag("orders", 0, 0, 10),))
        report = evaluator.sample([info], stopped={}, known={})["g"]
    finally:
        backend.close()
    (part,) = report.partitions
    assert part.lag == 10
    assert part.lag_seconds is not None and part.lag_seconds > 0
    assert report.lag_seconds == part.lag_seconds


def test_a_head_that_could_not_be_read_is_unknown_not_0() -> None:
    from tidings.instrumentation.lag import GroupReport, PartitionReport

    parts = (
        PartitionReport("orders", 0, 5, 9, 4, None, Status.OK),
        PartitionReport("orders", 1, 9, 9, 0, 0.0, Status.OK),
    )
    assert GroupReport("g", Status.OK, parts, 0.0).lag_seconds is None
