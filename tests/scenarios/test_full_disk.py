"""A consumer whose store's disk fills keeps its process, reports, and resumes with space.

The disk is a real one: a small tmpfs mounted for the test (skipped where mounting is not
allowed), filled with a ballast file and freed again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tidings import App, Event
from tidings.exceptions import StorageFull

pytestmark = pytest.mark.slow


class DiskNote(Event):
    n: int


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of the test's own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full; return it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        size = 1 << 20
        while size >= 512:
            try:
                os.write(fd, b"x" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return ballast


def test_a_group_on_a_full_disk_keeps_running_and_resumes_when_space_returns(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("full", broker=f"embedded://{small_disk / 'data'}")
    topic = app.topic("notes", partitions=2)
    seen: list[int] = []

    @app.consumer(topic, group="g")
    def handle(event: DiskNote) -> None:
        seen.append(event.n)

    try:
        with app.running() as runner, caplog.at_level(logging.WARNING):
            for n in range(5):
                app.publish(topic, DiskNote(n=n), key=str(n))
            wait_until(lambda: len(seen) == 5, 10, "the first events")
            ballast = fill(small_disk)
            with pytest.raises(StorageFull):
                app.publish(topic, DiskNote(n=99), key="x")
            # Heartbeats (every second) and commits now fail; the worker must outlive them.
            time.sleep(3.0)
            assert all(w.error is None for w in runner.workers), [w.error for w in runner.workers]
            assert "full" in caplog.text
            ballast.unlink()
            for n in range(5, 10):
                app.publish(topic, DiskNote(n=n), key=str(n))
            wait_until(lambda: len(seen) >= 10, 15, "events after space returned")
        assert sorted(set(seen)) == list(range(10))
    finally:
        app.close()
