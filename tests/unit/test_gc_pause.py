"""The collector pause nests across threads and never outlives a fork."""

from __future__ import annotations

import gc
import os

import pytest

from tidings.gc_pause import GC_PAUSE_MIN, gc_paused, serving_heap


def test_pauses_nest_and_restore_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused(GC_PAUSE_MIN):
        with gc_paused(GC_PAUSE_MIN):
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with gc_paused(GC_PAUSE_MIN - 1):  # small batches are left alone
        assert gc.isenabled()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_during_a_pause_collects_again() -> None:
    with gc_paused(GC_PAUSE_MIN):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_pauses_that_overlap_without_end_still_collect_young_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tidings.gc_pause.YOUNG_EVERY", 0.0)
    started: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()  # else allocations left by earlier tests can start a young collection here
    gc.callbacks.append(watch)
    try:
        with gc_paused(GC_PAUSE_MIN):  # one thread's batch...
            with gc_paused(GC_PAUSE_MIN):  # ...and another's, ending while the first goes on
                pass
            assert not gc.isenabled()
            assert started == [1]
    finally:
        gc.callbacks.remove(watch)
    assert gc.isenabled()


def test_serving_freezes_the_startup_heap_and_leaves_the_collector_as_it_found_it() -> None:
    before = gc.get_threshold()
    with serving_heap():
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # cycles made while serving are still collected
        assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
