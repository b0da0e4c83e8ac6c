from tidings.records import Record, TopicPartition
from tidings.runtime.commit_tracker import CommitTracker
from tidings.runtime.lanes import Lanes

TP = TopicPartition("t", 0)


def recs(*offsets: int) -> list[Record]:
    return [Record("t", 0, o, None, b"", (), 0.0) for o in offsets]


def test_commits_only_contiguous_finished_offsets() -> None:
    t = CommitTracker()
    (e, *_) = t.track(recs(10, 11, 12))
    t.finish(TP, 11, e)
    t.finish(TP, 12, e)
    assert t.take_committable() == {}  # 10 still running: nothing may be committed
    t.finish(TP, 10, e)
    assert t.take_committable() == {TP: 13}
    assert t.take_committable() == {}
    assert t.in_flight() == 0


def test_revoked_partition_ignores_late_finishes() -> None:
    t = CommitTracker()
    (e, _) = t.track(recs(0, 1))
    t.finish(TP, 0, e)
    assert t.revoke([TP]) == {TP: 1}
    t.finish(TP, 1, e)  # work that outlived the revocation
    assert t.take_committable() == {}
    assert not t.is_current(TP, e)


def test_lanes_keep_key_order_and_free_other_keys() -> None:
    lanes: Lanes[int] = Lanes()
    lanes.submit("a", 1)
    lanes.submit("a", 2)
    lanes.submit("b", 3)
    lanes.submit(None, 4)
    assert [i for _, i in lanes.ready] == [1, 3, 4]
    lanes.ready.clear()
    lanes.finish("a")
    assert [i for _, i in lanes.ready] == [2]
