"""`tidings run APP` exits non-zero when the consumer runtime stops on an unexpected error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli

CRASHING_APP = """
from tidings import App, Event

app = App("reactor")
readings = app.topic("readings")


class Reading(Event):
    n: int


class Meltdown(BaseException):
    pass


@app.consumer(readings, group="control")
async def control(event: Reading) -> None:
    raise Meltdown("core temperature exceeded")
"""


def test_run_exits_1_when_a_consumer_dies_instead_of_idling(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    cli = Cli(url)
    (tmp_path / "reactorapp.py").write_text(CRASHING_APP)
    cli.ok("topics", "create", "readings")
    cli.ok("publish", "readings", "--type", "Reading", '{"n": 1}')
    result = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "run", "reactorapp:app", "--broker", url],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "core temperature exceeded" in result.stderr
    assert "group control" in result.stderr and "stopped on an unexpected Meltdown" in result.stderr
