"""`tidings groups list / describe / reset` against a group that really consumed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli, flat
from tests.helpers import wait_until
from tidings import App, Event


class CliParcelShipped(Event):
    n: int


@pytest.fixture
def shipping(cli: Cli) -> Iterator[App]:
    """An app whose group `shipping` has handled 10 events on topic `parcels`."""
    app = App("cli-groups", broker=cli.broker)
    parcels = app.topic("parcels", partitions=2)

    @app.consumer(parcels, group="shipping")
    def ship(event: CliParcelShipped) -> None:
        return None

    app.publish_many(parcels, [(str(i), CliParcelShipped(n=i)) for i in range(10)])
    yield app
    app.close()


def test_list_and_describe_show_members_while_running(cli: Cli, shipping: App) -> None:
    with shipping.running():
        wait_until(lambda: cli.lag("shipping") == 0, what="shipping to catch up")
        (group,) = cli.json("groups", "list")
        assert group["group"] == "shipping" and len(group["members"]) == 1
        text = cli.ok("groups", "list").stdout
        assert "shipping" in text

        refused = cli("groups", "reset", "shipping", "--to", "earliest")
        assert refused.exit_code == 1
        assert refused.stderr.startswith("error: ") and "member" in refused.stderr

    described = cli.json("groups", "describe", "shipping")
    assert described["members"] == [] and described["lag"] == 0
    assert {p["partition"] for p in described["partitions"]} == {0, 1}
    assert all(p["committed"] == p["end"] for p in described["partitions"])
    assert sum(p["end"] for p in described["partitions"]) == 10
    assert "committed" in cli.ok("groups", "describe", "shipping").stdout


def test_reset_to_earliest_latest_and_a_time(cli: Cli, shipping: App) -> None:
    with shipping.running():
        wait_until(lambda: cli.lag("shipping") == 0, what="shipping to catch up")

    moved = cli.json("groups", "reset", "shipping", "--to", "earliest", "--yes")
    assert moved["applied"] is True
    parts = moved["partitions"]
    assert [(m["partition"], m["after"]) for m in parts] == [(0, 0), (1, 0)]
    assert all(m["before"] is not None for m in parts)
    assert sum(m["replayed"] for m in parts) == 10 and {m["skipped"] for m in parts} == {0}
    assert cli.lag("shipping") == 10

    cli.ok("groups", "reset", "shipping", "--to", "latest", "--topic", "parcels", "--yes")
    assert cli.lag("shipping") == 0

    cli.ok("groups", "reset", "shipping", "--to", "2000-01-01T00:00:00Z", "-y")
    assert cli.lag("shipping") == 10
    text = cli.ok("groups", "reset", "shipping", "--to", "2999-01-01T00:00:00+00:00", "-y").stdout
    assert "reset shipping to 2999-01-01" in text and "skips" in text
    assert cli.lag("shipping") == 0


def test_reset_shows_the_plan_and_changes_nothing_without_yes(cli: Cli, shipping: App) -> None:
    with shipping.running():
        wait_until(lambda: cli.lag("shipping") == 0, what="shipping to catch up")
    result = cli.ok("groups", "reset", "shipping", "--to", "earliest")
    text = flat(result.stdout)
    assert "Plan: reset shipping to earliest" in text
    assert "replays" in text and "event(s)" in text
    assert "rerun with --yes" in result.stderr
    assert cli.lag("shipping") == 0
    plan = cli.json("groups", "reset", "shipping", "--to", "earliest")
    assert plan["applied"] is False and sum(m["replayed"] for m in plan["partitions"]) == 10
    assert cli.lag("shipping") == 0


def test_unknown_group_names_the_known_ones(cli: Cli, shipping: App) -> None:
    with shipping.running():
        wait_until(lambda: cli.lag("shipping") == 0, what="shipping to catch up")
    result = cli("groups", "describe", "shiping")
    assert result.exit_code == 1
    assert "No consumer group 'shiping'" in result.stderr
    assert "Did you mean 'shipping'?" in result.stderr
    result = cli("groups", "reset", "nobody", "--to", "earliest")
    assert result.exit_code == 1 and "Groups: shipping." in result.stderr


def test_reset_rejects_a_bad_position(cli: Cli) -> None:
    result = cli("groups", "reset", "g", "--to", "yesterday", "--topic", "t")
    assert result.exit_code == 2
    assert "not 'earliest', 'latest' or an ISO datetime" in flat(result.output)


def test_a_group_can_be_positioned_before_it_first_runs(cli: Cli) -> None:
    cli.ok("topics", "create", "fresh", "--partitions", "2")
    cli.ok("publish", "fresh", "--type", "CliRawX", "{}")
    cli.ok("groups", "reset", "newcomer", "--topic", "fresh", "--to", "latest", "--yes")
    assert cli.lag("newcomer") == 0
    missing = cli("groups", "reset", "newcomer", "--topic", "frseh", "--to", "latest")
    assert missing.exit_code == 1 and "Did you mean 'fresh'?" in missing.stderr
