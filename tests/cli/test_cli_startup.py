"""The CLI starts fast: importing it, `--help` and `topics list` leave the heavy libraries alone.

tidings' app and event model (pydantic models, the runtime), asyncio and confluent_kafka take
most of a second to import; commands that do not need them must not pay for them. Checked by
what a fresh interpreter has imported, not by time. (typer itself imports pydantic to convert
option values once a command runs, so only `--help` can keep pydantic out.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("confluent_kafka", "asyncio", "tidings.app", "tidings.events", "tidings.runtime.route")
PYDANTIC = ("pydantic", "pydantic_core")

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


def imported_heavy(*argv: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv)), json.dumps(heavy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert imported_heavy(heavy=HEAVY + PYDANTIC) == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    assert imported_heavy(*argv, heavy=HEAVY + PYDANTIC) == []


def test_subcommand_help_imports_no_heavy_library() -> None:
    assert imported_heavy("dlq", "--help") == []
    assert imported_heavy("run", "--help") == []


def test_topics_list_on_the_embedded_broker_imports_no_heavy_library(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'data'}"
    imported_heavy("topics", "create", "orders", "--broker", url)
    assert imported_heavy("topics", "list", "--broker", url) == []
    assert imported_heavy("groups", "list", "--broker", url) == []
