"""After a broker outage longer than the group sessions, groups and delays resume at once.

A member whose session ran out during the outage used to rejoin as a new member and wait
for its old self to time out on the broker (10 s for the delay scheduler, 45 s for groups).
Members are static (``group.instance.id``), so they rejoin as themselves.

The test runs a broker of its own on port 29292 (never the shared one), stops its JVM
(keeping its data) for longer than the sessions, and starts it again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tidings import App, Event

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.slow]

PORT = 29292  # not 29092: other test brokers and clusters tend to sit there
ROOT = Path(__file__).resolve().parents[2]
SESSION_MS = 6000  # shorter than the 45 s default, to keep the outage (and the test) short


class Outage(Event):
    n: int


def port_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """The JVM `scripts/kafka start` launched, stopped and relaunched with its data."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.run = Path(f"/tmp/tidings-kafka-{PORT}")
        self.pid = int((self.run / "kafka.pid").read_text())
        self.argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        self.proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            if self.proc is not None:
                self.proc.poll()
            time.sleep(0.1)
        assert not port_open()

    def start(self) -> None:
        with (self.run / "broker.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.run, stdout=log, stderr=log, start_new_session=True
            )
        self.pid = self.proc.pid
        (self.run / "kafka.pid").write_text(str(self.pid))
        wait_until(port_open, 60, "the broker to listen again")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    env = {**os.environ, "TIDINGS_KAFKA_PORT": str(PORT)}
    script = str(ROOT / "scripts" / "kafka")
    started = subprocess.run([script, "start"], env=env, capture_output=True, check=False)
    if started.returncode != 0:
        pytest.skip(f"cannot start a broker on {PORT}: {started.stderr.decode()[-300:]}")
    handle = Broker(env)
    try:
        yield handle
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, check=False)
        if handle.proc is not None:  # the JVM the test relaunched: reap it
            if handle.proc.poll() is None:
                handle.proc.kill()
            handle.proc.wait(30)


def test_groups_and_delays_resume_within_seconds_after_a_long_outage(broker: Broker) -> None:
    app = App(
        "outage",
        broker=f"kafka://127.0.0.1:{PORT}",
        consumer_config={"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500},
    )
    topic = app.topic("outage-events", partitions=2)
    seen: dict[int, float] = {}

    @app.consumer(topic, group="outage-group")
    def handle(event: Outage) -> None:
        seen.setdefault(event.n, time.time())

    try:
        with app.running():
            app.publish(topic, Outage(n=1), key="a")
            app.publish(topic, Outage(n=2), key="b", delay=timedelta(seconds=1))
            wait_until(lambda: {1, 2} <= set(seen), 60, "events before the outage")

            broker.stop()
            time.sleep(SESSION_MS / 1000 * 2)  # past every session (the scheduler's too)
            broker.start()
            back = time.time()
            wait_until(lambda: _publish(app, topic, 3), 30, "publishing again")
            app.publish(topic, Outage(n=4), key="b", delay=timedelta(seconds=1))
            due = time.time() + 1
            wait_until(lambda: {3, 4} <= set(seen), 60, "events after the outage")
        # Before: the group resumed a session (6 s here, 45 s by default) after the
        # broker's return, and the delay a scheduler session (6 s here, 10 s) late.
        assert seen[3] - back < 4.0, seen[3] - back
        assert seen[4] - due < 3.0, seen[4] - due
    finally:
        app.close()


def _publish(app: App, topic: object, n: int) -> bool:
    try:
        app.publish(topic, Outage(n=n), key="a")  # type: ignore[arg-type]
        return True
    except Exception:
        return False
