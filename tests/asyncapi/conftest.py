"""The official AsyncAPI parser (@asyncapi/parser, run by Node), installed once into a cache.

`make test` (scripts/test) installs it; this fixture installs it too when it is missing, so
`pytest tests/asyncapi` works alone. Without Node the tests skip, saying so, unless
``CI=true`` or ``TIDINGS_REQUIRE_NODE=1``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
CACHE = Path(
    os.environ.get("TIDINGS_ASYNCAPI_CACHE", Path.home() / ".cache" / "tidings" / "asyncapi")
)


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("TIDINGS_REQUIRE_NODE") == "1"


def install() -> Path:
    """Install the parser into CACHE (when missing or its package.json changed)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = (HERE / "package.json").read_text()
    current = CACHE / "package.json"
    parser = CACHE / "node_modules" / "@asyncapi" / "parser"
    if not parser.exists() or not current.exists() or current.read_text() != wanted:
        current.write_text(wanted)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            check=True,
            timeout=600,
        )
    for script in ("validate.mjs", "yaml_to_json.mjs"):
        shutil.copyfile(HERE / script, CACHE / script)
    return CACHE / "validate.mjs"


@pytest.fixture(scope="session")
def asyncapi_errors() -> Callable[[Path], list[dict[str, Any]]]:
    """Validate a document file with the official parser; return its errors."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        reason = "node and npm are needed to run the official AsyncAPI parser"
        if _required():
            pytest.fail(f"{reason} (CI=true or TIDINGS_REQUIRE_NODE=1)")
        pytest.skip(f"{reason}; install Node 18+ to run these tests")
    script = install()

    def errors(path: Path) -> list[dict[str, Any]]:
        done = subprocess.run(
            ["node", str(script), str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.stdout, done.stderr
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        found: list[dict[str, Any]] = result["errors"]
        return found

    return errors


@pytest.fixture(scope="session")
def read_yaml(asyncapi_errors: Any) -> Callable[[Path], Any]:
    """Read a YAML file with js-yaml (installed next to the parser)."""

    def read(path: Path) -> Any:
        done = subprocess.run(
            ["node", str(CACHE / "yaml_to_json.mjs"), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)

    return read
