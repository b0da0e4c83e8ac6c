"""`tidings run APP`: a real worker process, stopped by SIGTERM, commits what it handled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, ProjectDir
from tests.helpers import wait_until

TINY_APP = """
import os

from tidings import App, Event

app = App("tiny")
orders = app.topic("orders", partitions=2)


class TinyOrderPlaced(Event):
    n: int


@app.consumer(orders, group="billing")
def bill(event: TinyOrderPlaced) -> None:
    with open(os.environ["HANDLED_LOG"], "a") as log:
        log.write(f"{event.n}\\n")


@app.consumer(orders, group="audit")
def audit(event: TinyOrderPlaced) -> None:
    return None
"""


def handled(path: Path) -> list[int]:
    return [int(n) for n in path.read_text().split()] if path.exists() else []


def test_run_handles_events_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    cli = Cli(url)
    (tmp_path / "tinyshop.py").write_text(TINY_APP)
    cli.ok("topics", "create", "orders", "--partitions", "2")
    for n in range(6):
        cli.ok("publish", "orders", "--type", "TinyOrderPlaced", "--key", str(n), f'{{"n": {n}}}')

    log = tmp_path / "handled.log"
    command = ["run", "tinyshop:app", "-g", "billing", "--grace", "5", "--broker", url]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", *command],
        cwd=tmp_path,
        env={**os.environ, "HANDLED_LOG": str(log), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: sorted(handled(log)) == list(range(6)), 60, "the worker to handle 6")
        wait_until(lambda: cli.lag("billing") == 0, 30, "billing to commit everything")
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "running tiny (tinyshop:app): groups billing" in stderr

    group = cli.json("groups", "describe", "billing")
    assert group["members"] == [] and group["lag"] == 0
    assert sum(p["committed"] for p in group["partitions"]) == 6
    assert all(p["committed"] == p["end"] for p in group["partitions"])
    assert "audit" not in [g["group"] for g in cli.json("groups", "list")]


def test_unknown_group_names_the_apps_groups(project: ProjectDir, cli: Cli) -> None:
    name = project.module(TINY_APP.replace("TinyOrderPlaced", f"Placed_{project.prefix}"))
    result = cli("run", f"{name}:app", "--group", "shipping")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: App 'tiny' ({name}:app) has no consumer group 'shipping'; its groups are: "
        "billing, audit. Pass one of them to --group."
    )


def test_an_app_without_consumers_is_one_red_line(project: ProjectDir, cli: Cli) -> None:
    name = project.module("from tidings import App\napp = App('idle')\n")
    result = cli("run", f"{name}:app")
    assert result.exit_code == 1
    assert "declares no consumers" in result.stderr and "Traceback" not in result.output


def test_demo_runs_the_demo_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    class FakeDemo:
        @staticmethod
        def demo(
            broker: str | None,
            duration: float,
            rate: float,
            seed: int | None,
            *,
            dashboard: bool = False,
        ) -> int:
            calls.append((broker, duration, rate, seed, dashboard))
            return 3

    monkeypatch.setitem(sys.modules, "tidings.cli.demo", FakeDemo)  # type: ignore[arg-type]
    cli = Cli("embedded://unused")
    result = cli("demo", "--duration", "2", "--rate", "5", "--seed", "7", broker=False)
    assert result.exit_code == 3
    assert calls == [(None, 2.0, 5.0, 7, False)]
    assert cli("demo", "--dashboard", broker=False).exit_code == 3
    assert calls[-1][-1] is True


def test_demo_without_its_module_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tidings.cli.demo", None)  # type: ignore[arg-type]
    result = Cli("embedded://unused")("demo", broker=False)
    assert result.exit_code == 1
    assert "`tidings demo` is not available" in result.stderr


def test_run_against_an_unreachable_broker_fails_in_bounded_time(tmp_path: Path) -> None:
    (tmp_path / "tinyshop.py").write_text(TINY_APP)
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidings.cli",
            "run",
            "tinyshop:app",
            "--broker",
            "kafka://127.0.0.1:1",
        ],
        cwd=tmp_path,
        env={**os.environ, "TIDINGS_KAFKA_CONNECT_TIMEOUT": "2", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr and "scripts/kafka start" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    # librdkafka retries every ~50 ms: its lines go through logging, each said once.
    assert "%3|" not in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr


STUCK_APP = """
import os
import time

from tidings import App, Event

app = App("stuck", grace=60)


class StuckJob(Event):
    n: int


@app.consumer(app.topic("jobs"), group="workers")
def work(event: StuckJob) -> None:
    open(os.environ["STARTED"], "w").close()
    time.sleep(60)
"""


def test_a_second_ctrl_c_aborts_at_once_without_committing(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    cli = Cli(url)
    (tmp_path / "stuck.py").write_text(STUCK_APP)
    cli.ok("topics", "create", "jobs")
    cli.ok("publish", "jobs", "--type", "StuckJob", '{"n": 1}')
    started = tmp_path / "started"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "run", "stuck:app", "--broker", url],
        cwd=tmp_path,
        env={**os.environ, "STARTED": str(started)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(started.exists, 60, "the handler to start")
        worker.send_signal(signal.SIGINT)  # graceful: would wait up to 60 s for the handler
        time.sleep(0.5)
        worker.send_signal(signal.SIGINT)  # abort
        began = time.monotonic()
        _, stderr = worker.communicate(timeout=30)
        assert time.monotonic() - began < 10, "abort waited for the running handler"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 130, stderr
    assert "aborting" in stderr
    partitions = cli.json("groups", "describe", "workers")["partitions"]
    assert all(p["committed"] in (None, 0) for p in partitions), partitions


OBSERVED_APP = """
from tidings import App, Event, Retry

app = App("observed")
orders = app.topic("orders", partitions=2)


class TinyOrderPlaced(Event):
    n: int


@app.consumer(orders, group="billing", retry=Retry(attempts=2, backoff=0.01))
def bill(event: TinyOrderPlaced) -> None:
    if event.n == 3:
        raise ValueError("poison order")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_run_serves_metrics_and_health_and_logs_json(tmp_path: Path) -> None:
    import json
    from datetime import datetime

    from prometheus_client.parser import text_string_to_metric_families

    url = f"embedded://{tmp_path / 'data'}"
    cli = Cli(url)
    (tmp_path / "observed.py").write_text(OBSERVED_APP)
    cli.ok("topics", "create", "orders", "--partitions", "2")
    for n in range(6):
        cli.ok("publish", "orders", "--type", "TinyOrderPlaced", "--key", str(n), f'{{"n": {n}}}')
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = ["run", "observed:app", "--broker", url, "--grace", "5"]
    command += ["--http", f"127.0.0.1:{port}", "--log-format", "json"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def consumed() -> dict[str, float]:
        status, text = _get(base + "/metrics")
        out: dict[str, float] = {}
        if status != 200:
            return out
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "messaging_client_consumed_messages_total":
                    out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0) + s.value
        return out

    try:
        wait_until(lambda: _get(base + "/readyz")[0] == 200, 60, "/readyz 200")
        wait_until(lambda: consumed() == {"ack": 5, "dead_letter": 1}, 60, "5 acks, 1 dead")
        assert _get(base + "/livez")[0] == 200
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines()]  # one JSON object a line
    for r in records:
        assert datetime.fromisoformat(r["time"]).tzinfo is not None
        assert {"level", "logger", "message"} <= set(r)
    dead = [r for r in records if "dead-lettered" in r["message"]]
    assert len(dead) == 1
    assert dead[0]["group"] == "billing" and dead[0]["topic"] == "orders"
    assert isinstance(dead[0]["offset"], int) and isinstance(dead[0]["partition"], int)


def test_run_log_format_auto_is_plain_lines_off_a_terminal(tmp_path: Path) -> None:
    from datetime import datetime

    url = f"embedded://{tmp_path / 'data'}"
    (tmp_path / "observed.py").write_text(OBSERVED_APP)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "run", "observed:app", "--broker", url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()  # the "running ..." line: the app is up
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=60)
        stderr = first + rest
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    lines = stderr.splitlines()
    assert lines and any("running observed" in line for line in lines)
    for line in lines:
        stamp, level, logger = line.split(" ", 3)[:3]
        assert datetime.fromisoformat(stamp).tzinfo is not None, line
        assert level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        assert logger.endswith(":"), line
