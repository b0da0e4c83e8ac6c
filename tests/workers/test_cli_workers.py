"""`tidings run --workers`: option errors, --reload, --http per worker, a second Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import wait_until
from tests.workers.conftest import Handled, Supervised, alive, publish, supervised
from tidings.cli import app as cli_app
from tidings.workers.settings import SupervisorSettings, parse_size, parse_workers


@pytest.fixture
def run(tmp_path: Path, embedded: str, workspace: dict[str, str]) -> Iterator[Supervised]:
    yield from supervised(tmp_path, embedded, workspace)


CLI_APP = """
from tidings import App, Event

app = App("wkcli")


class WkCliPing(Event):
    n: int


@app.consumer(app.topic("wkcli-pings"), group="wkcli")
def ping(event: WkCliPing) -> None:
    return None
"""


@pytest.fixture
def here(tmp_path: Path, embedded: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run in-process in an app's directory; return the run command's first args.

    The module keeps one name, so a second test finds it imported (one WkCliPing class).
    """
    (tmp_path / "wkcli_app.py").write_text(CLI_APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["run", "wkcli_app:app", "--broker", embedded]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers '0': give a whole number of worker processes >= 1"),
        (["--workers", "two"], "or 'auto' for one per CPU"),
        (["--max-memory", "12XB"], "--max-memory '12XB' is not a memory size"),
        (["--workers", "2", "--heartbeat-timeout", "0"], "--heartbeat-timeout must be > 0"),
    ],
)
def test_bad_values_are_refused_before_any_worker_starts(
    here: list[str], args: list[str], message: str
) -> None:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(cli_app, [*here, *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()), result.stderr


def test_reload_without_watchfiles_says_what_to_install(
    here: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(cli_app, [*here, "--reload"])
    assert result.exit_code == 2, result.output
    assert "pip install 'tidings[reload]'" in " ".join(result.stderr.split())


def test_sizes_and_worker_counts() -> None:
    assert parse_workers("auto") == (os.cpu_count() or 1)
    assert parse_workers("3") == 3
    assert parse_size("512MB") == 512_000_000
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("300m") == 300_000_000
    policy = SupervisorSettings(workers=1, grace=1)
    assert [policy.backoff(n) for n in (1, 2, 3, 7, 8, 20)] == [0.5, 1, 2, 30, 30, 30]


def test_reload_restarts_the_workers_when_a_python_file_changes_and_group_is_honoured(
    run: Supervised, tmp_path: Path, workspace: dict[str, str]
) -> None:
    run.start("--reload", "--group", workspace["WK_GROUP"] + "-a")  # one group only
    (first,) = run.wait_workers(1)
    wait_until(lambda: "watching" in run.log(), 10, "the watcher to start")
    time.sleep(0.3)  # watchfiles arms its inotify watches just after saying so
    with (tmp_path / "wkapp.py").open("a") as f:
        f.write("\n# edited\n")
    wait_until(lambda: first not in run.workers() and len(run.workers()) == 1, 20, "a reload")
    handled = Handled(Path(workspace["WK_LOG"]))
    publish(run.broker, workspace, 1, 1)
    wait_until(lambda: len(handled.rows()) == 1, 30, "the new worker to handle")
    time.sleep(0.3)
    assert [g for g, *_ in handled.rows()] == ["a"], "a group not named with --group ran"
    assert run.stop() == 0
    log = run.log()
    assert "files changed: restarting the workers" in log, log
    # The embedded store (in tmp_path too) wrote all along: not *.py, so no other reload.
    assert log.count("files changed") == 1, log


def _free_ports(n: int) -> int:
    """Return a port p such that p .. p+n-1 are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n > 65535:
            continue
        try:
            for i in range(n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise AssertionError("no run of free ports")


def test_http_serves_each_worker_on_its_own_port(run: Supervised) -> None:
    port = _free_ports(2)
    run.start("--workers", "2", "--http", f"127.0.0.1:{port}")
    run.wait_workers(2)

    def ready(p: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_until(lambda: ready(port) and ready(port + 1), 30, "both workers ready")
    with urllib.request.urlopen(f"http://127.0.0.1:{port + 1}/metrics", timeout=2) as r:
        assert b"messaging_" in r.read()
    assert run.stop() == 0


def test_a_second_ctrl_c_kills_every_worker_at_once(
    run: Supervised, workspace: dict[str, str]
) -> None:
    run.env["WK_SLOW"] = "60"
    run.start("--workers", "2")
    pids = run.wait_workers(2)
    handled = Handled(Path(workspace["WK_LOG"]))
    publish(run.broker, workspace, 4, 1)
    wait_until(lambda: "assigned" in run.log(), 20, "partitions assigned")
    time.sleep(1.5)  # the 60-second handlers are running now
    assert run.proc is not None
    run.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping 2 worker(s) gracefully" in run.log(), 10, "a graceful stop")
    began = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(10) == 130
    assert time.monotonic() - began < 5
    assert not any(alive(p) for p in pids)
    assert handled.rows() == []
    assert "aborting: killing every worker" in run.log()


def test_workers_stop_gracefully_when_their_supervisor_dies(run: Supervised) -> None:
    run.start("--workers", "2")
    pids = run.wait_workers(2)
    assert run.proc is not None
    run.proc.kill()
    run.proc.wait()
    wait_until(lambda: not any(alive(p) for p in pids), 20, "the orphaned workers to stop")
    assert "the supervisor is gone; stopping gracefully" in run.log()
