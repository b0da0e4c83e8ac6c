"""Several OS processes on one embedded store: concurrent producers, killed members and writers.

Children are separate Python processes (`subprocess`) running small scripts against the same
data directory, so locking, heartbeats and crash safety are exercised for real.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tidings.backends.embedded import EmbeddedBackend
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec

SESSION = 1.0
HEARTBEAT = 0.2

PRODUCER = """
import sys
from pathlib import Path
from tidings.backends.embedded import EmbeddedBackend
from tidings.records import OutgoingRecord
path, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
b = EmbeddedBackend(path, url="embedded://child")
print("ready", flush=True)
sys.stdin.readline()  # wait for "go", so that several producers really overlap
i = 0
while n < 0 or i < n:
    size = 1 if i % 3 == 0 else 50  # single records and batches, interleaved
    batch = [OutgoingRecord("t", f"{tag}-{j}".encode(), f"{tag}-{j}".encode())
             for j in range(i, i + size if n < 0 else min(i + size, n))]
    b.produce(batch)
    i += len(batch)
    print(i, flush=True)  # acknowledged: every record below i is durable
"""

MEMBER = """
import sys
from pathlib import Path
from tidings.backends.embedded import EmbeddedBackend
b = EmbeddedBackend(Path(sys.argv[1]), url="embedded://child", session_timeout=float(sys.argv[2]),
                    heartbeat_interval=float(sys.argv[3]))
print("ready", flush=True)
sys.stdin.readline()
c = b.open_consumer("g", ["t"], start="earliest", listener=None, member_id="child")
last = None
while True:
    c.fetch(100, 0.05)
    owned = sorted(tp.partition for tp in c.assignment())
    if owned != last:
        print(",".join(map(str, owned)), flush=True)
        last = owned
"""


class Child:
    """A Python child process running `script`; its stdout lines arrive in `lines`."""

    def __init__(self, script: str, *args: object) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.strip())

    def go(self) -> None:
        """Wait until the child is ready, then let it start."""
        assert self.next_line() == "ready"
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()

    def next_line(self, timeout: float = 30.0) -> str:
        return self.lines.get(timeout=timeout)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the child (after killing it if still running); return its exit code."""
        code = self.proc.wait(timeout=timeout)
        self._pump.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()


def test_two_processes_producing_at_once_lose_nothing(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path, url="embedded://test")
    b.ensure_topics([TopicSpec("t", partitions=3)])
    n = 10_000
    children = [Child(PRODUCER, tmp_path, tag, n) for tag in ("a", "b")]
    for c in children:
        c.go()
    assert [c.finish() for c in children] == [0, 0]
    reader = b.open_consumer(None, ["t"], start="earliest", listener=None)
    seen: dict[int, list[int]] = {}
    values: list[bytes] = []
    while batch := reader.fetch(5000, 0):
        for r in batch:
            seen.setdefault(r.partition, []).append(r.offset)
            values.append(r.value or b"")
    assert sorted(values) == sorted(f"{t}-{i}".encode() for t in "ab" for i in range(n))
    for offsets in seen.values():
        assert offsets == list(range(len(offsets)))  # contiguous, no gaps, no duplicates
    reader.close()
    b.close()


def test_a_killed_members_partitions_move_to_the_survivor(tmp_path: Path) -> None:
    b = EmbeddedBackend(tmp_path, url="embedded://test", session_timeout=SESSION,
                        heartbeat_interval=HEARTBEAT)  # fmt: skip
    b.ensure_topics([TopicSpec("t", partitions=4)])
    child = Child(MEMBER, tmp_path, SESSION, HEARTBEAT)
    child.go()
    try:
        while child.next_line() != "0,1,2,3":
            pass
        survivor = b.open_consumer("g", ["t"], start="earliest", listener=None)
        child_owns = ""
        deadline = time.monotonic() + 30
        while not (len(survivor.assignment()) == 2 and child_owns.count(",") == 1):
            assert time.monotonic() < deadline, "the two members never split the partitions"
            survivor.fetch(100, 0.05)
            while not child.lines.empty():
                child_owns = child.lines.get()
        child.kill()
        killed_at = time.monotonic()
        everything = [TopicPartition("t", p) for p in range(4)]
        while survivor.assignment() != everything:
            assert time.monotonic() - killed_at < SESSION + 5, "partitions did not move"
            survivor.fetch(100, 0.05)
        assert [g.members for g in b.groups()] == [(survivor.member_id,)]  # type: ignore[attr-defined]
        survivor.close()
    finally:
        child.kill()
    b.close()


def test_sigkill_while_producing_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    setup = EmbeddedBackend(tmp_path, url="embedded://test")
    setup.ensure_topics([TopicSpec("t")])
    setup.close()
    child = Child(PRODUCER, tmp_path, "k", -1)
    child.go()
    acked = 0
    while acked < 2000:
        acked = int(child.next_line())
    child.kill()  # mid-write, most likely: the child does nothing but produce
    while not child.lines.empty():  # acknowledgements printed before it died
        acked = max(acked, int(child.lines.get()))
    with sqlite3.connect(tmp_path / "tidings.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    b = EmbeddedBackend(tmp_path, url="embedded://test")
    reader = b.open_consumer(None, ["t"], start="earliest", listener=None)
    values = set()
    while batch := reader.fetch(5000, 0):
        values.update(r.value for r in batch)
    assert len(values) >= acked
    # Batches are atomic and in order: what is stored is exactly a prefix of what was sent.
    assert values == {f"k-{i}".encode() for i in range(len(values))}
    b.produce([OutgoingRecord("t", None, b"after")])  # the store is still writable
    reader.close()
    b.close()
