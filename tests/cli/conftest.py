"""Fixtures for CLI tests: a broker per backend and an in-process `tidings` runner."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tidings.cli import app as cli_app


class Cli:
    """Runs `tidings ARGS --broker URL` in this process and returns typer's Result."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        # Wide enough that tables never wrap the cells the tests look for.
        self.runner = CliRunner(env={"COLUMNS": "240"})

    def __call__(self, *args: str, input: str | None = None, broker: bool = True) -> Result:
        argv = [*args, "--broker", self.broker] if broker else list(args)
        return self.runner.invoke(cli_app, argv, input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def lag(self, group: str) -> int | None:
        """Return the group's total lag, or None while the broker does not know the group."""
        result = self("groups", "describe", group, "--json")
        if result.exit_code == 1 and "No consumer group" in result.stderr:
            return None
        assert result.exit_code == 0, result.output
        lag: int = json.loads(result.stdout)["lag"]
        return lag

    def json_lines(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self.ok(*args, "--json").stdout.splitlines()]


@pytest.fixture(params=["memory", "embedded"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker URL on each in-process backend: memory (per name) and embedded (tmp dir)."""
    if request.param == "memory":
        return f"memory://cli-{uuid.uuid4().hex}"
    return f"embedded://{tmp_path / 'data'}"


@pytest.fixture
def cli(broker: str) -> Cli:
    return Cli(broker)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectDir]:
    """A working directory for app modules; sys.path and imported modules are restored."""
    directory = ProjectDir(tmp_path / "project")
    directory.path.mkdir()
    monkeypatch.chdir(directory.path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield directory
    for name in [m for m in sys.modules if m.startswith(directory.prefix)]:
        del sys.modules[name]


class ProjectDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.prefix = f"cliapp_{uuid.uuid4().hex[:8]}"

    def module(self, source: str, suffix: str = "mod") -> str:
        """Write a module with a name unique to this test and return that name."""
        name = f"{self.prefix}_{suffix}"
        (self.path / f"{name}.py").write_text(source)
        return name


def flat(text: str) -> str:
    """Return terminal output without box-drawing characters and with single spaces."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())
