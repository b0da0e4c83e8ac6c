"""`tidings run --workers`: the supervisor run as users run it, and its process table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tidings import App, Event


class WkNumber(Event):
    """The test app's event, as the publishing test process knows it."""

    key: str
    seq: int


# Handlers append "<group> <key> <seq> <pid>" per event (one short O_APPEND write each, so
# lines from several processes never interleave). LEAK_MB: each event keeps that much.
WORKER_APP = """
import os
import time

from tidings import App, Event, WorkerRestarted

app = App("wk", grace=float(os.environ.get("WK_GRACE", "30")))


def restarted(e: WorkerRestarted) -> None:  # runs in the supervisor
    with open(os.environ["WK_LOG"] + ".restarts", "a") as f:
        f.write(f"{e.index} {e.pid} {e.code} {e.reason} {e.restarts}\\n")


app.on(WorkerRestarted, restarted)
numbers = app.topic(os.environ["WK_TOPIC"], partitions=4)
SLOW = float(os.environ.get("WK_SLOW", "0"))
LEAK = int(float(os.environ.get("WK_LEAK_MB", "0")) * 1_000_000)
kept = []


class WkNumber(Event):
    key: str
    seq: int


def record(group: str, event: WkNumber) -> None:
    if SLOW:
        time.sleep(SLOW)
    if LEAK:
        kept.append(bytearray(b"x" * LEAK))
    line = f"{group} {event.key} {event.seq} {os.getpid()}\\n".encode()
    fd = os.open(os.environ["WK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@app.consumer(numbers, group=os.environ["WK_GROUP"] + "-a")
def first(event: WkNumber) -> None:
    record("a", event)


@app.consumer(numbers, group=os.environ["WK_GROUP"] + "-b")
async def second(event: WkNumber) -> None:
    record("b", event)
"""


class Handled:
    """What the handlers wrote: (group, key, seq, pid) per handled event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[str, str, int, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            group, key, seq, pid = line.split()
            out.append((group, key, int(seq), int(pid)))
        return out

    def distinct(self, group: str) -> set[tuple[str, int]]:
        return {(k, s) for g, k, s, _ in self.rows() if g == group}

    def assert_per_key_order(self) -> None:
        """The first handling of each event, per group and key, comes in publish order."""
        first: dict[tuple[str, str], list[int]] = {}
        seen: set[tuple[str, str, int]] = set()
        for group, key, seq, _ in self.rows():
            if (group, key, seq) not in seen:
                seen.add((group, key, seq))
                first.setdefault((group, key), []).append(seq)
        for (group, key), seqs in first.items():
            assert seqs == sorted(seqs), f"group {group} key {key} out of order: {seqs}"


def children(pid: int) -> dict[int, str]:
    """Return {child pid: state letter} for the processes whose parent is `pid`."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out[int(entry.name)] = fields[0]
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Supervised:
    """`tidings run wkapp:app --workers N ...` in a subprocess, with its stderr in a file."""

    def __init__(self, tmp_path: Path, broker: str, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tmp_path / f"supervisor-{uuid.uuid4().hex[:6]}.log"

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "tidings.cli", "run", "wkapp:app", "--broker"]
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [*command, self.broker, "--log-format", "plain", *args],
                cwd=self.tmp_path,
                env={**os.environ, **self.env, "COLUMNS": "200"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        return self.proc

    def log(self) -> str:
        return self.stderr.read_text()

    def workers(self) -> list[int]:
        """Return the live worker pids (children of the supervisor)."""
        assert self.proc is not None
        return sorted(p for p, state in children(self.proc.pid).items() if state != "Z")

    def wait_workers(self, n: int, timeout: float = 30) -> list[int]:
        wait_until(lambda: len(self.workers()) == n, timeout, f"{n} workers\n{self.log()}")
        return self.workers()

    def no_zombies(self) -> None:
        assert self.proc is not None
        zombies = [p for p, state in children(self.proc.pid).items() if state == "Z"]
        assert not zombies, f"unreaped children of the supervisor: {zombies}"

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the supervisor and return its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = self.workers()
        self.proc.kill()
        self.proc.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def worker_broker(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path / 'data'}"
    return f"kafka://{require_kafka()}"


@pytest.fixture
def embedded(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'data'}"


@pytest.fixture
def workspace(tmp_path: Path, topic_name: str) -> dict[str, str]:
    """Write the test app and return its environment (topic, groups, handled log)."""
    (tmp_path / "wkapp.py").write_text(WORKER_APP)
    return {
        "WK_TOPIC": topic_name,
        "WK_GROUP": topic_name,
        "WK_LOG": str(tmp_path / "handled.log"),
    }


def supervised(tmp_path: Path, broker: str, env: dict[str, str]) -> Iterator[Supervised]:
    run = Supervised(tmp_path, broker, env)
    try:
        yield run
    finally:
        run.close()


def publish(broker: str, env: dict[str, str], keys: int, per_key: int) -> None:
    """Publish `per_key` events for each of `keys` keys, interleaved, seq 0.. per key."""
    app = App("wk-publisher", broker=broker, status_interval=None)
    try:
        topic = app.topic(env["WK_TOPIC"], partitions=4)
        batch = [
            (f"k{k}", WkNumber(key=f"k{k}", seq=s)) for s in range(per_key) for k in range(keys)
        ]
        for start in range(0, len(batch), 1000):
            app.publish_many(topic, batch[start : start + 1000])
    finally:
        app.close()


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
