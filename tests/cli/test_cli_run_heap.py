"""`tidings run` keeps the garbage collector off the heap built at startup while it serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli
from tests.helpers import wait_until

HEAP_APP = """
import gc
import os

from tidings import App, Event

app = App("heap")
pings = app.topic("pings")


class HeapPing(Event):
    n: int


@app.consumer(pings, group="watch")
async def watch(event: HeapPing) -> None:
    with open(os.environ["FROZEN_LOG"], "a") as log:
        log.write(f"{gc.get_freeze_count()} {int(gc.isenabled())}\\n")
"""


def test_run_freezes_the_startup_heap_and_keeps_collecting(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    cli = Cli(url)
    (tmp_path / "heapapp.py").write_text(HEAP_APP)
    cli.ok("topics", "create", "pings")
    cli.ok("publish", "pings", "--type", "HeapPing", '{"n": 1}')
    log = tmp_path / "frozen.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "run", "heapapp:app", "--broker", url],
        cwd=tmp_path,
        env={**os.environ, "FROZEN_LOG": str(log)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: log.exists() and log.read_text().strip(), 60, "the handler to run")
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    frozen, enabled = map(int, log.read_text().split()[:2])
    assert frozen > 1000  # the modules, classes and schemas loaded at startup
    assert enabled == 1
