"""`tidings run --workers N`: workers that die or hang are restarted and nothing is lost."""

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
def run(tmp_path: Path, worker_broker: str, workspace: dict[str, str]) -> Iterator[Supervised]:
    yield from supervised(tmp_path, worker_broker, workspace)


def test_a_sigkilled_worker_is_restarted_and_every_event_handled_in_key_order(
    run: Supervised, workspace: dict[str, str]
) -> None:
    keys, per_key = 12, 70
    publish(run.broker, workspace, keys, per_key)
    everything = {(f"k{k}", s) for k in range(keys) for s in range(per_key)}
    handled = Handled(Path(workspace["WK_LOG"]))
    run.env["WK_SLOW"] = "0.004"
    run.start("--workers", "2")
    first = run.wait_workers(2)
    wait_until(lambda: len(handled.distinct("a")) >= 120, 60, "120 events handled")
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    assert len(handled.distinct("a")) < len(everything), "killed after the work was done"
    wait_until(lambda: len(run.workers()) == 2 and victim not in run.workers(), 30, "a new worker")
    run.no_zombies()
    wait_until(
        lambda: handled.distinct("a") == everything and handled.distinct("b") == everything,
        90,
        "every event handled by both groups",
    )
    handled.assert_per_key_order()
    pids = run.workers()
    assert run.stop() == 0, run.log()
    log = run.log()
    index = 0 if f"worker 0 (pid {victim})" in log else 1
    assert f"worker {index} (pid {victim}) was killed by SIGKILL; restarting it in 0.5 s" in log
    assert "Traceback" not in log, log
    restarts = Path(workspace["WK_LOG"] + ".restarts").read_text().split()
    assert restarts == [str(index), str(victim), "-9", "exited", "1"]
    # Static membership: the new worker takes its partitions back; the other keeps its own.
    after = log.split("was killed by SIGKILL", 1)[1].split("stopping 2 worker(s)", 1)[0]
    moved = [
        line for line in after.splitlines() if f"[worker {1 - index}]" in line and "revoked" in line
    ]
    assert not moved, moved
    assert not any(alive(p) for p in pids), "a worker outlived its supervisor"


def test_sigterm_drains_every_worker_within_grace_and_commits(
    run: Supervised, workspace: dict[str, str]
) -> None:
    publish(run.broker, workspace, 6, 50)
    handled = Handled(Path(workspace["WK_LOG"]))
    run.start("--workers", "2", "--grace", "5")
    pids = run.wait_workers(2)
    wait_until(lambda: len(handled.distinct("b")) == 300, 60, "300 events handled")
    wait_until(lambda: len(handled.distinct("a")) == 300, 60, "300 events handled")
    began = time.monotonic()
    assert run.stop(timeout=30) == 0, run.log()
    assert time.monotonic() - began < 5 + 10, "the supervisor outlived grace + margin"
    assert not any(alive(p) for p in pids)
    before = len(handled.rows())

    again = Supervised(run.tmp_path, run.broker, run.env)
    try:
        again.start("--workers", "2")
        again.wait_workers(2)
        publish(run.broker, workspace, 1, 1)  # key k0 seq 0 once more: a marker
        wait_until(lambda: len(handled.rows()) >= before + 2, 60, "the marker handled")
        time.sleep(0.5)  # room for redeliveries to show up, if there were any
        assert len(handled.rows()) == before + 2, handled.rows()[before:]
        assert again.stop() == 0
    finally:
        again.close()
