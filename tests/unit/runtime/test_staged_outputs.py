"""StagedOutputs: what an exactly-once commit takes, in which order, and what it drops."""

from __future__ import annotations

from tidings.records import OutgoingRecord, TopicPartition
from tidings.runtime.commit_tracker import Partition
from tidings.runtime.exactly_once import StagedOutputs

TP = TopicPartition("in", 0)


def out(value: bytes) -> OutgoingRecord:
    return OutgoingRecord("out", b"k", value, (), None, None)


def test_take_returns_outputs_below_the_commit_in_input_order() -> None:
    staged, part = StagedOutputs(), Partition(TP, 0)
    staged.add(part, 2, [out(b"2a"), out(b"2b")])  # finished before offset 1 (concurrency)
    staged.add(part, 1, [out(b"1")])
    staged.add(part, 5, [out(b"5")])
    assert [r.value for r in staged.take({TP: 3})] == [b"1", b"2a", b"2b"]
    assert len(staged) == 1  # offset 5 waits for its own commit
    assert [r.value for r in staged.take({TP: 6})] == [b"5"]


def test_outputs_of_a_revoked_assignment_are_never_taken() -> None:
    staged, old = StagedOutputs(), Partition(TP, 0)
    staged.add(old, 0, [out(b"old")])
    old.gone = True  # revoked (or rewound) after staging
    staged.add(old, 1, [out(b"late")])  # a handler that outlived the revocation
    new = Partition(TP, 1)
    staged.add(new, 0, [out(b"new")])
    assert [r.value for r in staged.take({TP: 2})] == [b"new"]


def test_drop_forgets_a_partition() -> None:
    staged, part = StagedOutputs(), Partition(TP, 0)
    staged.add(part, 0, [out(b"x")])
    staged.drop([TP])
    assert staged.take({TP: 1}) == []
