"""An idle worker on the embedded broker sleeps: it barely queries the store, yet wakes
within milliseconds when an event arrives, from this process or another one."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import wait_until
from tidings import App, Event
from tidings.backends.embedded import EmbeddedBackend


class IdleTick(Event):
    n: int


def test_an_idle_worker_with_three_groups_barely_queries_the_store(tmp_path: Path) -> None:
    app = App("idle", broker=f"embedded://{tmp_path / 'data'}")
    topic = app.topic("ticks", partitions=3)
    seen: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    def subscribe(group: str) -> None:
        @app.consumer(topic, group=group)
        def handle(event: IdleTick) -> None:
            seen[group].append(time.time())

    for group in seen:
        subscribe(group)

    try:
        with app.running():
            backend = app.backend
            assert isinstance(backend, EmbeddedBackend)
            wait_until(lambda: len(backend.groups()) == 3, 10, "three groups")
            time.sleep(1.5)  # past joins and the first heartbeats
            statements: list[str] = []
            lock = threading.Lock()

            def count(sql: str) -> None:
                with lock:
                    statements.append(sql)

            backend.store.trace(count)
            time.sleep(3.0)
            backend.store.trace(None)
            per_second = len(statements) / 3.0
            # Polling every few ms made this about 1,000 statements/s (8% of a core).
            assert per_second < 100, (per_second, statements[-20:])

            # Still prompt: an event from this process, then one from another process.
            sent = time.time()
            app.publish(topic, IdleTick(n=1), key="k")
            wait_until(lambda: all(seen.values()), 5, "the event in every group")
            assert max(v[0] for v in seen.values()) - sent < 0.5  # typically 1-2 ms
            url = f"embedded://{tmp_path / 'data'}"
            code = (
                "import sys, time; from tidings import App, Event\n"
                "class IdleTick(Event):\n    n: int\n"
                f"app = App('other', broker={url!r})\n"
                "t = app.topic('ticks', partitions=3)\n"
                "app.backend.topics()\n"  # opened before the clock starts
                "print(time.time(), flush=True)\n"
                "app.publish(t, IdleTick(n=2), key='k'); app.close()\n"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, check=True, timeout=30
            )
            sent = float(out.stdout.split()[0])
            wait_until(lambda: all(len(v) == 2 for v in seen.values()), 5, "the second event")
            assert max(v[1] for v in seen.values()) - sent < 0.5
    finally:
        app.close()
