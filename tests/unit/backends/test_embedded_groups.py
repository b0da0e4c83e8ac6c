"""Embedded consumer groups: heartbeats, expiry, and what an expired member finds out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tidings.backends.base import ConsumerHandle
from tidings.backends.embedded import EmbeddedBackend
from tidings.backends.embedded.groups import target
from tidings.exceptions import ConfigurationError
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec
from tidings.testing import FakeClock

T = "t"
ALL = {TopicPartition(T, p) for p in range(4)}


class Listener:
    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.revoked: list[TopicPartition] = []

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.assigned.extend(partitions)

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.revoked.extend(partitions)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(
        tmp_path, url="embedded://test", session_timeout=6.0, heartbeat_interval=1.0, clock=clock
    )
    b.ensure_topics([TopicSpec(T, partitions=4)])
    yield b
    b.close()


def owned(*consumers: ConsumerHandle) -> list[set[TopicPartition]]:
    for c in consumers:
        c.fetch(10, 0)
    return [set(c.assignment()) for c in consumers]


def test_target_spreads_sorted_partitions_over_sorted_members() -> None:
    got = target({"b": ["x"], "a": ["x", "y"]}, {"x": 3, "y": 1})
    assert got == {
        "a": {TopicPartition("x", 0), TopicPartition("x", 2), TopicPartition("y", 0)},
        "b": {TopicPartition("x", 1)},
    }


def test_an_expired_members_partitions_move_and_its_commit_is_ignored(
    backend: EmbeddedBackend, clock: FakeClock
) -> None:
    l1 = Listener()
    m1 = backend.open_consumer("g", [T], start="earliest", listener=l1)
    m2 = backend.open_consumer("g", [T], start="earliest", listener=None)
    a, b = owned(m1, m2)
    assert a | b == ALL and not a & b
    victim = sorted(a)[0]

    clock.advance(7.0)  # m1 stops heartbeating (a long GC pause, a frozen VM)
    assert owned(m2) == [ALL]  # m2's heartbeat expired m1 and it took over
    m2.commit({victim: 3}, sync=True)
    m1.commit({victim: 99}, sync=True)  # m1 does not know yet: its commit must not land
    info = next(g for g in backend.groups() if g.group == "g")
    assert {p.partition: p.committed for p in info.partitions}[victim.partition] == 3

    m1.fetch(10, 0)  # m1 finds out at its next fetch, and rejoins
    assert set(l1.revoked) == a and m1.assignment() == []
    owned(m2)  # m2 gives back what the new target assigns to m1
    a, b = owned(m1, m2)
    assert a and b and a | b == ALL and not a & b
    m1.close()
    m2.close()


def test_fetch_keeps_membership_alive_while_everything_is_paused(
    backend: EmbeddedBackend, clock: FakeClock
) -> None:
    m1 = backend.open_consumer("g", [T], start="earliest", listener=None)
    m2 = backend.open_consumer("g", [T], start="earliest", listener=None)
    a, b = owned(m1, m2)
    m1.pause(sorted(a))
    for _ in range(20):  # 20 s of fake time, far past the 6 s session
        clock.advance(0.9)
        m1.fetch(10, 0)
        m2.fetch(10, 0)
    assert set(m1.assignment()) == a and set(m2.assignment()) == b
    assert [len(g.members) for g in backend.groups()] == [2]
    m1.close()
    m2.close()


def test_close_hands_partitions_over_at_once(backend: EmbeddedBackend) -> None:
    m1 = backend.open_consumer("g", [T], start="earliest", listener=None)
    m2 = backend.open_consumer("g", [T], start="earliest", listener=None)
    owned(m1, m2)
    m1.close()
    assert owned(m2) == [ALL]
    assert backend.groups()[0].members == (m2.member_id,)  # type: ignore[attr-defined]
    m2.close()
    assert backend.groups()[0].state == "Empty"


def test_a_reused_member_id_starts_afresh(backend: EmbeddedBackend) -> None:
    backend.produce([OutgoingRecord(T, None, b"x", partition=p) for p in range(4)])
    first = backend.open_consumer("g", [T], start="earliest", listener=None, member_id="w1")
    assert len(first.fetch(10, 0)) == 4
    first.commit({TopicPartition(T, p): 1 for p in range(4)}, sync=True)
    # The process died without leaving; its replacement comes back under the same id.
    second = backend.open_consumer("g", [T], start="earliest", listener=None, member_id="w1")
    assert second.fetch(10, 0) == [] and set(second.assignment()) == ALL
    second.close()


def test_expired_members_do_not_block_reset(backend: EmbeddedBackend, clock: FakeClock) -> None:
    backend.open_consumer("g", [T], start="earliest", listener=None).fetch(1, 0)
    with pytest.raises(ConfigurationError, match="live member"):
        backend.reset_group("g", T, "earliest")
    clock.advance(7.0)  # the member's process died without closing
    assert backend.reset_group("g", T, "latest") == {tp: 0 for tp in ALL}


def test_an_expired_member_alone_rejoins_and_reclaims_in_one_fetch(
    backend: EmbeddedBackend, clock: FakeClock
) -> None:
    listener = Listener()
    m1 = backend.open_consumer("g", [T], start="earliest", listener=listener)
    assert owned(m1) == [ALL]
    clock.advance(7.0)
    backend.open_consumer("g", [T], start="earliest", listener=None).close()  # expires m1
    assert owned(m1) == [ALL]
    assert set(listener.revoked) == ALL and len(listener.assigned) == 8
    m1.close()


def test_a_failing_revocation_is_retried_at_the_next_fetch(backend: EmbeddedBackend) -> None:
    class Flaky(Listener):
        fail = True

        def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("commit failed")
            super().on_revoked(partitions)

    m1 = backend.open_consumer("g", [T], start="earliest", listener=Flaky())
    assert owned(m1) == [ALL]
    m2 = backend.open_consumer("g", [T], start="earliest", listener=None)
    with pytest.raises(RuntimeError):
        m1.fetch(10, 0)
    assert owned(m2) == [set()]  # nothing moved: m1 never let go
    a, b = owned(m1, m2)  # the retry revokes, m2 claims
    assert len(a) == len(b) == 2
    m1.close()
    m2.close()
