"""`tidings topics list / create / describe`, and errors every command shares."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import Cli, flat
from tidings.backends.registry import open_backend
from tidings.cli import app as cli_app
from tidings.cli.options import parse_duration


def test_create_list_and_describe(cli: Cli) -> None:
    created = cli.ok("topics", "create", "orders", "--partitions", "3", "--retention", "7d")
    assert "Created topic 'orders' with 3 partition(s), retention 7d" in created.stdout
    cli.ok("publish", "orders", "--type", "CliRawPlaced", "--key", "a", '{"n": 1}')
    cli.ok("publish", "orders", "--type", "CliRawPlaced", "--delay", "1h", '{"n": 2}')

    (listed,) = cli.json("topics", "list")
    assert listed["name"] == "orders"
    assert listed["partitions"] == 3
    assert listed["retention_seconds"] == 7 * 86400
    assert listed["events"] == 1
    assert listed["delayed_pending"] == 1
    assert listed["next_due"] is not None

    described = cli.json("topics", "describe", "orders")
    assert sum(described["end_offsets"]) == 1
    assert len(described["start_offsets"]) == 3

    table = cli.ok("topics", "list").stdout
    assert "orders" in table and "7d" in table
    text = cli.ok("topics", "describe", "orders").stdout
    assert "orders: 3 partition(s), retention 7d, 1 event(s)" in text
    assert "Delayed: 1 pending" in text


def test_create_is_idempotent_but_never_repartitions(cli: Cli) -> None:
    cli.ok("topics", "create", "orders", "--partitions", "2")
    again = cli.ok("topics", "create", "orders", "--partitions", "2")
    assert "already exists" in again.stderr
    changed = cli("topics", "create", "orders", "--partitions", "4")
    assert changed.exit_code == 1
    assert "already exists with 2 partition(s)" in changed.stderr


def test_describe_an_unknown_topic_suggests_a_close_name(cli: Cli) -> None:
    cli.ok("topics", "create", "account-events")
    result = cli("topics", "describe", "acount-events")
    assert result.exit_code == 1
    assert "No topic 'acount-events'" in result.stderr
    assert "Did you mean 'account-events'?" in result.stderr


def test_bad_names_and_durations_are_rejected(cli: Cli) -> None:
    result = cli("topics", "create", "bad name!")
    assert result.exit_code == 1
    assert "Topic name 'bad name!' is invalid" in result.stderr
    result = cli("topics", "create", "ok", "--retention", "soon")
    assert result.exit_code == 2
    assert "Invalid value for '--retention'" in flat(result.output)
    assert "use e.g. 30s, 5m, 12h, 7d" in flat(result.output)


def test_empty_broker_lists_nothing_but_says_how_to_start(cli: Cli) -> None:
    open_backend(cli.broker).close()  # an empty store (a missing one is an error)
    assert cli.json("topics", "list") == []
    assert "tidings topics create NAME" in cli.ok("topics", "list").stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("12h", 43200), ("7d", 604800), ("1h30m", 5400), ("2w", 1209600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bare", ["7", "90", "1.5"])
def test_a_retention_without_a_unit_is_refused_with_an_example(cli: Cli, bare: str) -> None:
    result = cli("topics", "create", "orders", "--retention", bare)
    assert result.exit_code == 2
    output = flat(result.output)
    assert f"'{bare}' has no unit" in output
    assert f"{bare}d for days, {bare}h for hours" in output
    listing = cli("topics", "list", "--json")  # nothing was created, not even a store
    if listing.exit_code == 1:
        assert "No tidings store" in listing.stderr
    else:
        assert json.loads(listing.stdout) == []


def test_unknown_broker_scheme_is_one_red_line() -> None:
    result = CliRunner().invoke(cli_app, ["topics", "list", "--broker", "kafak://h:9092"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: Unknown broker URL scheme 'kafak' in 'kafak://h:9092'. Did you mean kafka://? "
        "Supported: embedded://, kafka://, memory://."
    )


def test_debug_shows_the_exception_instead() -> None:
    result = CliRunner().invoke(
        cli_app, ["--debug", "topics", "list", "--broker", "kafak://h:9092"]
    )
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ConfigurationError"


def test_broker_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_BROKER", "memory://from-env-cli")
    result = CliRunner().invoke(cli_app, ["topics", "list"])
    assert result.exit_code == 0
    assert "memory://from-env-cli" in result.output


def test_list_hides_tidings_internal_topics_unless_all(cli: Cli) -> None:
    from tidings.runtime.control import CONTROL_SPEC
    from tidings.runtime.status import STATUS_SPEC

    cli.ok("topics", "create", "orders")
    backend = open_backend(cli.broker)
    backend.ensure_topics([STATUS_SPEC, CONTROL_SPEC])  # what a running worker creates
    backend.close()
    names = [t["name"] for t in cli.json("topics", "list")]
    assert names == ["orders"]
    assert "tidings.status" not in cli.ok("topics", "list").stdout
    every = [t["name"] for t in cli.json("topics", "list", "--all")]
    assert every == ["orders", "tidings.control", "tidings.status"]
