"""`tidings dlq list / replay`: why events failed, and replaying them into one group."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli
from tests.helpers import wait_until
from tidings import App, Event, Retry
from tidings.backends.registry import open_backend
from tidings.records import Record
from tidings.runtime.dead_letters import dead_letter


class CliCardCharged(Event):
    n: int


@pytest.fixture
def billing(cli: Cli) -> Iterator[App]:
    """Group `billing` failed on the 3 odd of 6 events: charges.billing.dlq holds 3."""
    app = App("cli-dlq", broker=cli.broker)
    charges = app.topic("charges", partitions=2)

    @app.consumer(charges, group="billing", retry=Retry(attempts=1))
    def charge(event: CliCardCharged) -> None:
        if event.n % 2:
            raise ValueError(f"card {event.n} declined")

    app.publish_many(charges, [(str(i), CliCardCharged(n=i)) for i in range(6)])
    with app.running():
        wait_until(
            lambda: cli.lag("billing") == 0 and dlq_size(cli) == 3,
            what="billing to dead-letter the odd charges",
        )
    yield app
    app.close()


def dlq_size(cli: Cli) -> int:
    topics = {t["name"]: t["events"] for t in cli.json("topics", "list")}
    return topics.get("charges.billing.dlq", 0)


def test_list_shows_why_each_event_failed(cli: Cli, billing: App) -> None:
    listed = cli.json("dlq", "list")
    assert listed["topics"] == {"charges.billing.dlq": 3}
    letters = sorted(listed["dead_letters"], key=lambda d: d["value"]["n"])
    assert [d["value"]["n"] for d in letters] == [1, 3, 5]
    first = letters[0]
    assert first["group"] == "billing" and first["type"] == "CliCardCharged"
    assert first["error_type"] == "ValueError" and first["error_message"] == "card 1 declined"
    assert first["original"].startswith("charges[") and first["key"] == "1"
    assert first["reason"] and first["failed_at"].endswith("Z")
    assert "ValueError: card 1 declined" in first["traceback"]

    assert len(cli.json("dlq", "list", "-n", "2")["dead_letters"]) == 2
    text = cli.ok("dlq", "list", "--group", "billing").stdout
    assert "charges.billing.dlq" in text and "card 1 declined" in text
    other = cli.ok("dlq", "list", "--group", "shipping")
    assert "No dead letters for group 'shipping'" in other.stderr


def test_replay_republishes_once_then_only_new_dead_letters(cli: Cli, billing: App) -> None:
    assert cli.json("dlq", "replay", "--group", "billing")["replayed"] == 3
    replayed = cli.json_lines("tail", "charges", "-n", "3")
    assert sorted(r["value"]["n"] for r in replayed) == [1, 3, 5]
    assert all(r["headers"]["tidings-replay-group"] == "billing" for r in replayed)
    assert not any(k.startswith("tidings-dlq-") for r in replayed for k in r["headers"])
    assert sum(t["events"] for t in cli.json("topics", "list") if t["name"] == "charges") == 9

    assert cli.json("dlq", "replay", "--group", "billing")["replayed"] == 0
    add_dead_letter(cli.broker, n=7)
    text = cli.ok("dlq", "replay", "--group", "billing").stdout
    assert "Replayed 1 dead letter(s) into group 'billing'" in text
    assert cli.json("dlq", "replay", "--group", "billing", "--all")["replayed"] == 4


def test_replay_chosen_ids_only(cli: Cli, billing: App) -> None:
    letters = cli.json("dlq", "list")["dead_letters"]
    chosen = letters[0]["id"]
    out = cli.json("dlq", "replay", "--group", "billing", "--id", chosen)
    assert out == {"group": "billing", "replayed": 1, "not_found": []}
    (last,) = cli.json_lines("tail", "charges", "-n", "1")
    assert last["id"] == chosen
    # Choosing ids leaves the progress alone: a plain replay still replays all three.
    assert cli.json("dlq", "replay", "--group", "billing", "--topic", "charges")["replayed"] == 3
    missing = cli("dlq", "replay", "--group", "billing", "--id", "no-such-id")
    assert missing.exit_code == 1 and "No dead letter with id no-such-id" in missing.stderr


def test_replay_for_an_unknown_group_names_the_groups(cli: Cli, billing: App) -> None:
    result = cli("dlq", "replay", "--group", "biling")
    assert result.exit_code == 1
    assert "No consumer group 'biling'" in result.stderr and "'billing'" in result.stderr


def add_dead_letter(url: str, *, n: int) -> None:
    backend = open_backend(url)
    try:
        original = Record("charges", 0, 99, b"k", b'{"n": %d}' % n, (), time.time())
        error = ValueError(f"card {n} declined")
        backend.produce(
            [
                dead_letter(
                    original,
                    group="billing",
                    reason="handler_error",
                    error=error,
                    attempts=1,
                    now=time.time(),
                )
            ]
        )
    finally:
        backend.close()
