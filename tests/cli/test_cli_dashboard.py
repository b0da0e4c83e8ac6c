"""`tidings dashboard`: serves the page on loopback; refuses remote actions without a token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


def _tidings(*args: str) -> list[str]:
    return [sys.executable, "-m", "tidings.cli", *args]


def test_dashboard_serves_the_page_and_the_api(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    with subprocess.Popen(
        _tidings("dashboard", "--http", "127.0.0.1:0", "--broker", url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            assert found, line
            assert "read-only" in line
            with urllib.request.urlopen(found.group(1), timeout=30) as res:
                assert b"tidings dashboard" in res.read()
            with urllib.request.urlopen(found.group(1) + "api/overview", timeout=30) as res:
                doc = json.loads(res.read())
            assert doc["actions"] is False and doc["groups"] == []
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_actions_on_a_network_address_without_a_token_fail_at_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIDINGS_DASHBOARD_TOKEN"}
    broker = f"embedded://{tmp_path / 'data'}"
    done = subprocess.run(
        _tidings("dashboard", "--http", "0.0.0.0:0", "--allow-actions", "--broker", broker),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert "needs a token" in done.stderr + done.stdout


@pytest.mark.parametrize("bad", ["nowhere", "127.0.0.1:99999"])
def test_a_bad_http_address_is_a_clear_error(bad: str, tmp_path: Path) -> None:
    done = subprocess.run(
        _tidings("dashboard", "--http", bad, "--broker", f"embedded://{tmp_path / 'data'}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "HOST:PORT" in done.stderr + done.stdout
