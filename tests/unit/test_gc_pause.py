"""The collector pause nests across threads and never outlives a fork."""

from __future__ import annotations

import gc
import os

import pytest

from tidings.gc_pause import GC_PAUSE_MIN, gc_paused


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
