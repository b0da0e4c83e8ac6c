"""`tidings run --workers`: a stuck worker and a worker past --max-memory are replaced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.workers.conftest import Handled, Supervised, alive, publish, supervised


@pytest.fixture
def run(tmp_path: Path, embedded: str, workspace: dict[str, str]) -> Iterator[Supervised]:
    yield from supervised(tmp_path, embedded, workspace)


def test_a_stopped_worker_is_killed_and_restarted_within_the_heartbeat_limit(
    run: Supervised, workspace: dict[str, str]
) -> None:
    run.start("--workers", "2", "--heartbeat-timeout", "3")
    victim = run.wait_workers(2)[0]
    handled = Handled(Path(workspace["WK_LOG"]))
    publish(run.broker, workspace, 4, 5)
    wait_until(lambda: len(handled.distinct("a")) == 20, 30, "the first events handled")
    os.kill(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    wait_until(lambda: not alive(victim), 10, "the stopped worker to be killed")
    took = time.monotonic() - stopped
    # Its poll loop last turned up to one beat (0.5 s) and one idle poll (0.25 s) earlier.
    assert 3 - 0.75 <= took < 3 + 1.5, f"killed after {took:.1f} s; the limit is 3 s"
    wait_until(lambda: len(run.workers()) == 2, 10, "its replacement")
    run.no_zombies()
    publish(run.broker, workspace, 4, 10)  # seq 0-9 again: new events after the restart
    wait_until(lambda: len(handled.rows()) >= 2 * 60, 60, "the new events handled")
    assert run.stop() == 0
    log = run.log()
    assert "its poll loop has not turned for 3." in log, log
    assert f"(pid {victim}) was killed: its poll loop was stuck; restarting it" in log, log


def test_a_long_handler_is_not_a_stuck_worker(run: Supervised, workspace: dict[str, str]) -> None:
    run.env["WK_SLOW"] = "4"
    run.start("--workers", "1", "--heartbeat-timeout", "2")
    (worker,) = run.wait_workers(1)
    handled = Handled(Path(workspace["WK_LOG"]))
    publish(run.broker, workspace, 1, 1)
    wait_until(lambda: len(handled.rows()) == 2, 30, "both 4-second handlers to finish")
    assert run.workers() == [worker], run.log()
    assert run.stop() == 0
    assert "poll loop has not turned" not in run.log()


def test_a_worker_past_max_memory_is_drained_and_restarted(
    run: Supervised, workspace: dict[str, str]
) -> None:
    run.env["WK_LEAK_MB"] = "5"
    run.env["WK_SLOW"] = "0.05"
    run.start("--workers", "1", "--max-memory", "200MB")
    (first,) = run.wait_workers(1)
    handled = Handled(Path(workspace["WK_LOG"]))
    publish(run.broker, workspace, 4, 12)  # 48 events x 2 groups x 5 MB: past the limit
    everything = {(f"k{k}", s) for k in range(4) for s in range(12)}
    wait_until(
        lambda: handled.distinct("a") == everything and handled.distinct("b") == everything,
        60,
        "every event handled",
    )
    assert run.stop() == 0
    log = run.log()
    assert f"worker 0 (pid {first}) uses" in log and "over --max-memory 200.0 MB" in log, log
    assert f"(pid {first}) drained after passing --max-memory; restarting it" in log, log
    # A drain lets in-flight events finish and commits them: nothing is handled twice.
    rows = handled.rows()
    assert len(rows) == 2 * len(everything), "an event was handled twice"
    assert len({pid for *_, pid in rows}) >= 2, "every event was handled by the first worker"
    handled.assert_per_key_order()
