"""CommitTracker's per-run bookkeeping: runs split by partition, finishes in any order."""

from tidings.records import Record, TopicPartition
from tidings.runtime.commit_tracker import CommitTracker

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def rec(tp: TopicPartition, offset: int, size: int = 10) -> Record:
    return Record(tp.topic, tp.partition, offset, b"k", b"v" * (size - 1), (), 0.0)


def test_a_fetch_is_split_into_runs_of_one_partition() -> None:
    t = CommitTracker()
    runs = t.track_runs([rec(A, 0), rec(A, 1), rec(B, 7), rec(A, 2)])
    assert [(r.part.tp, r.start, r.size) for r in runs] == [(A, 0, 2), (B, 2, 1), (A, 3, 1)]
    assert t.in_flight() == 4 and t.in_flight(A) == 3
    assert t.in_flight_bytes() == 40


def test_commit_waits_for_earlier_runs_and_skips_gaps_in_offsets() -> None:
    t = CommitTracker()
    (first,) = t.track_runs([rec(A, 0), rec(A, 1)])
    (second,) = t.track_runs([rec(A, 5), rec(A, 6)])  # compaction left a gap
    t.finish_at(second, 0)
    t.finish_at(second, 1)
    assert t.take_committable() == {}
    assert t.in_flight_bytes() == 20  # the finished run's bytes are released
    t.finish_at(first, 1)
    assert t.take_committable() == {}
    t.finish_at(first, 0)
    assert t.take_committable() == {A: 7}
    assert t.in_flight() == 0 and t.in_flight_bytes() == 0


def test_partial_prefix_of_a_run_is_committable() -> None:
    t = CommitTracker()
    (run,) = t.track_runs([rec(A, 3), rec(A, 4), rec(A, 5)])
    t.finish_at(run, 0)
    assert t.take_committable() == {A: 4}
    t.finish_at(run, 2)
    assert t.take_committable() == {}
    t.finish_at(run, 1)
    assert t.take_committable() == {A: 6}


def test_finishes_after_revocation_are_ignored_and_new_assignment_starts_clean() -> None:
    t = CommitTracker()
    (old,) = t.track_runs([rec(A, 0), rec(A, 1)])
    t.stop_starting([A])
    assert not old.part.live
    t.finish_at(old, 0)  # running when the revocation began: still counts
    assert t.revoke([A]) == {A: 1}
    t.finish_at(old, 1)
    assert t.in_flight() == 0 and t.in_flight_bytes() == 0
    (new,) = t.track_runs([rec(A, 1)])
    assert new.part.live and new.part is not old.part
    t.finish_at(new, 0)
    assert t.take_committable() == {A: 2}


def test_running_counts_handlers_per_partition() -> None:
    t = CommitTracker()
    (run,) = t.track_runs([rec(A, 0)])
    run.part.running += 1
    assert t.running([A, B]) == 1
    run.part.running -= 1
    assert t.running([A]) == 0


def test_finished_events_release_their_bytes_while_one_of_the_run_is_still_running() -> None:
    t = CommitTracker()
    (run,) = t.track_runs([rec(A, i, size=100) for i in range(5)] + [rec(A, 5, size=3)])
    assert t.in_flight_bytes() == 503
    for i in range(1, 6):  # event 0 is a slow handler
        t.finish_at(run, i)
    assert t.in_flight_bytes() == 503 - 5 * (503 // 6)  # one share, plus the remainder
    assert t.revoke([A]) == {}
    assert t.in_flight_bytes() == 0 and t.in_flight() == 0


def test_bytes_add_up_to_zero_whatever_the_order() -> None:
    t = CommitTracker()
    (run,) = t.track_runs([rec(A, i, size=7 + i) for i in range(4)])
    for i in (2, 0, 3):
        t.finish_at(run, i)
        assert t.in_flight_bytes() > 0
    t.finish_at(run, 1)
    assert t.in_flight_bytes() == 0
