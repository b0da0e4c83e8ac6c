"""The CLI starts fast: importing it, `--help` and `topics list` leave the heavy libraries alone.

pydantic (and tidings' event model and runtime on top of it), asyncio and confluent_kafka take
most of a second to import; commands that do not need them must not pay for them. Checked by
what a fresh interpreter has imported, not by time. (typer 0.29 imports pydantic to convert
option values, which is why pyproject.toml keeps typer below it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "pydantic",
    "pydantic_core",
    "confluent_kafka",
    "asyncio",
    "tidings.app",
    "tidings.events",
    "tidings.runtime.route",
)

PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv:
    from tidings.cli import app
    try:
        app(argv, prog_name="tidings")
    except SystemExit as exc:
        assert not exc.code, exc.code
else:
    import tidings.cli
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(m for m in sys.modules if m in heavy)))
"""


def imported_heavy(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv)), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert imported_heavy() == []


@pytest.mark.parametrize("argv", [["--help"], ["topics", "--help"], ["--version"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    assert imported_heavy(*argv) == []


def test_subcommand_help_imports_no_heavy_library() -> None:
    assert imported_heavy("dlq", "--help") == []
    assert imported_heavy("run", "--help") == []
    assert imported_heavy("schema", "check", "--help") == []
    assert imported_heavy("docs", "--help") == []
    assert imported_heavy("dashboard", "--help") == []


def test_topics_list_on_the_embedded_broker_imports_no_heavy_library(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    imported_heavy("topics", "create", "orders", "--broker", url)
    assert imported_heavy("topics", "list", "--broker", url) == []
    assert imported_heavy("groups", "list", "--broker", url) == []
