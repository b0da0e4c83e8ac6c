"""Read-only commands never create a store, and read a store they cannot write."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, flat
from tidings import App, Event

READ_ONLY = [
    ("topics", "list"),
    ("topics", "describe", "orders"),
    ("groups", "list"),
    ("groups", "describe", "billing"),
    ("tail", "orders"),
    ("dlq", "list"),
]


class ReadOnlyPlaced(Event):
    n: int


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_a_missing_store_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = Cli("embedded://nothing-here")(*command)
    assert result.exit_code == 1, result.output
    assert f"no tidings store at {tmp_path / 'nothing-here'}" in flat(result.stderr).lower()
    assert not (tmp_path / "nothing-here").exists()


def test_the_default_store_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIDINGS_BROKER", raising=False)
    result = Cli("")("groups", "list", broker=False)
    assert result.exit_code == 1
    assert f"no tidings store at {tmp_path / '.tidings'}" in flat(result.stderr).lower()
    assert not (tmp_path / ".tidings").exists()


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[Path]:
    """A store with events, a group and a dead letter, bind-mounted read-only."""
    data = tmp_path / "data"
    app = App("shop", broker=f"embedded://{data}")
    orders = app.topic("orders", partitions=2)
    handled: list[int] = []

    @app.consumer(orders, group="billing", retry=None)
    def bill(event: ReadOnlyPlaced) -> None:
        if event.n == 3:
            raise ValueError("no invoice for 3")
        handled.append(event.n)

    try:
        for n in range(5):
            app.publish(orders, ReadOnlyPlaced(n=n), key=str(n))
        with app.running():
            from tests.helpers import wait_until

            wait_until(lambda: len(handled) == 4, 20, "the handled events")
            wait_until(lambda: app.backend.groups()[0].lag == 0, 20, "the commits")
    finally:
        app.close()
    view = tmp_path / "view"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(data), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(view)], capture_output=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
        with pytest.raises(OSError):  # even root cannot write there
            (view / "probe").write_text("x")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_read_only_copy_of_a_store_can_still_be_read(read_only_store: Path) -> None:
    cli = Cli(f"embedded://{read_only_store}")
    (topic,) = [t for t in cli.json("topics", "list") if t["name"] == "orders"]
    assert topic["events"] == 5
    assert cli.json("topics", "describe", "orders")["partitions"] == 2
    assert "billing" in {g["group"] for g in cli.json("groups", "list")}
    assert cli.json("groups", "describe", "billing")["lag"] == 0
    assert len(cli.json_lines("tail", "orders")) == 5
    assert "no invoice for 3" in cli.ok("dlq", "list", "--json").stdout
