"""`tidings schema lock/check APP`: lock an app's event schemas, then catch breaking changes."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.cli.conftest import ProjectDir
from tidings.cli import app as cli_app

HEADER = """
from typing import Any
from tidings import App, Event, upcaster

app = App("lockme")
topic = app.topic("lock-events")

"""

V1 = """
class Banned(Event):
    event_type = f"{__name__}.Banned"
    account_id: str


@app.consumer(topic, group="g")
def handle(event: Banned) -> None:
    return None
"""


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "240"}).invoke(cli_app, list(args))


@pytest.fixture
def swap(project: ProjectDir, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Write the app module; calling again replaces it, as a new commit would."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    name = f"{project.prefix}_app"

    def write(body: str) -> str:
        (project.path / f"{name}.py").write_text(HEADER + body)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return f"{name}:app"

    return write


def test_lock_writes_every_event_type_and_version(swap) -> None:  # type: ignore[no-untyped-def]
    spec = swap(V1)
    result = run("schema", "lock", spec)
    assert result.exit_code == 0, result.output
    lock = json.loads(Path("tidings.schema.lock").read_text())
    assert lock["app"] == "lockme" and lock["format"] == 1
    ((name, entry),) = lock["events"].items()
    assert name.endswith(".Banned")
    (schema,) = entry["versions"]["1"]
    assert schema["required"] == ["account_id"]
    assert run("schema", "check", spec).exit_code == 0


def test_a_new_required_field_fails_the_check_with_its_fix(swap) -> None:  # type: ignore[no-untyped-def]
    spec = swap(V1)
    assert run("schema", "lock", spec).exit_code == 0
    spec = swap(V1.replace("account_id: str", "account_id: str\n    reason: str"))
    result = run("schema", "check", spec)
    assert result.exit_code == 1, result.output
    assert "field `reason` became required" in result.output
    assert "give it a default, or bump the version" in result.output
    assert "1 breaking change(s)" in result.output
    # forward only: new consumers may drop... but adding a required field is forward-safe
    assert run("schema", "check", spec, "--mode", "forward").exit_code == 0
    # lock refuses to record it; --force records it
    assert run("schema", "lock", spec).exit_code == 1
    assert run("schema", "lock", spec, "--force").exit_code == 0
    lock = json.loads(Path("tidings.schema.lock").read_text())
    (entry,) = lock["events"].values()
    assert len(entry["versions"]["1"]) == 2


def test_an_optional_field_passes_and_a_version_bump_needs_an_upcaster(swap) -> None:  # type: ignore[no-untyped-def]
    spec = swap(V1)
    assert run("schema", "lock", spec).exit_code == 0
    spec = swap(V1.replace("account_id: str", 'account_id: str\n    reason: str = ""'))
    result = run("schema", "check", spec, "--mode", "full")
    assert result.exit_code == 0, result.output
    bumped = V1.replace("(Event)", "(Event, version=2)").replace("account_id: str", "id: str")
    result = run("schema", "check", swap(bumped))
    assert result.exit_code == 1
    assert "no upcaster from version 1" in result.output
    assert "@upcaster(" in result.output
    upcast = bumped + (
        "\n\n@upcaster(Banned, from_version=1)\n"
        "def _v1(p: dict[str, Any]) -> dict[str, Any]:\n"
        "    return {'id': p['account_id']}\n"
    )
    result = run("schema", "check", swap(upcast))
    assert result.exit_code == 0, result.output
    assert "new version 2" in result.output


def test_check_without_a_lock_says_how_to_make_one(swap) -> None:  # type: ignore[no-untyped-def]
    result = run("schema", "check", swap(V1))
    assert result.exit_code == 1
    assert "tidings schema lock" in result.output


def test_the_accounts_example_matches_its_committed_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    result = run("schema", "check", "examples.accounts.app:app")  # finds the package's lock
    assert result.exit_code == 0, result.output
