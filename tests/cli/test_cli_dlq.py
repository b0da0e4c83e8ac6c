"""`tidings dlq list / replay`: why events failed, and replaying them into one group."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.helpers import wait_until
from tidings import App, Event, Retry
from tidings.backends.registry import open_backend
from tidings.records import Record
from tidings.runtime.dead_letters import dead_letter
from tidings.wire import H_ID


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
    assert first["original_topic"] == "charges" and first["original_partition"] in (0, 1)
    assert isinstance(first["original_offset"], int) and isinstance(first["offset"], int)
    assert first["attempts"] == 1 and first["status"] == "pending" and first["dead_letters"] == 1
    assert first["reason"] and first["failed_at"].endswith("Z")
    assert "ValueError: card 1 declined" in first["traceback"]
    assert len({d["id"] for d in letters}) == 3

    assert len(cli.json("dlq", "list", "-n", "2")["dead_letters"]) == 2
    text = cli.ok("dlq", "list", "--group", "billing").stdout
    assert "charges.billing.dlq" in text and "card 1 declined" in text
    assert first["id"] in text and "pending" in text and "event id" in text


def test_list_for_a_group_without_dead_letters_names_the_groups_that_have_some(
    cli: Cli, billing: App
) -> None:
    other = cli("dlq", "list", "--group", "biling")
    assert other.exit_code == 1
    assert "No consumer group 'biling' with dead letters" in other.stderr
    assert "Did you mean 'billing'?" in other.stderr
    assert "Groups with dead letters: billing." in other.stderr


def test_replay_republishes_once_then_only_new_dead_letters(cli: Cli, billing: App) -> None:
    assert cli.json("dlq", "replay", "--group", "billing")["replayed"] == 3
    replayed = cli.json_lines("tail", "charges", "-n", "3")
    assert sorted(r["value"]["n"] for r in replayed) == [1, 3, 5]
    assert all(r["headers"]["tidings-replay-group"] == "billing" for r in replayed)
    assert not any(k.startswith("tidings-dlq-") for r in replayed for k in r["headers"])
    assert sum(t["events"] for t in cli.json("topics", "list") if t["name"] == "charges") == 9

    assert cli.json("dlq", "replay", "--group", "billing")["replayed"] == 0
    assert {d["status"] for d in cli.json("dlq", "list")["dead_letters"]} == {"replayed"}
    add_dead_letter(cli.broker, n=7)
    text = cli.ok("dlq", "replay", "--group", "billing").stdout
    assert "Replayed 1 dead-lettered event(s) into group 'billing'; 3 replayed before" in text
    assert cli.json("dlq", "replay", "--group", "billing", "--all")["replayed"] == 4


def test_replay_chosen_ids_only(cli: Cli, billing: App) -> None:
    letters = cli.json("dlq", "list")["dead_letters"]
    chosen = letters[0]["id"]
    out = cli.json("dlq", "replay", "--group", "billing", "--id", chosen, "--id", chosen)
    assert out == {"group": "billing", "replayed": 1, "ids": [chosen]}
    text = cli.ok("dlq", "replay", "--group", "billing", "--id", chosen).stdout
    assert "Replayed 1 dead-lettered event(s) into group 'billing'." in text
    (last,) = cli.json_lines("tail", "charges", "-n", "1")
    assert last["id"] == chosen
    # The chosen event is marked replayed: a plain replay replays the other two.
    again = cli.json("dlq", "replay", "--group", "billing", "--topic", "charges")
    assert again["replayed"] == 2 and chosen not in again["ids"]


def test_replaying_an_unknown_id_is_an_error_and_replays_nothing(cli: Cli, billing: App) -> None:
    chosen = cli.json("dlq", "list")["dead_letters"][0]["id"]
    missing = cli("dlq", "replay", "--group", "billing", "--id", chosen, "--id", "no-such-id")
    assert missing.exit_code == 1
    assert "No dead letter with event id no-such-id" in missing.stderr
    assert "nothing was replayed" in missing.stderr and "Replayed" not in missing.stdout
    assert {d["status"] for d in cli.json("dlq", "list")["dead_letters"]} == {"pending"}


def test_replay_for_an_unknown_group_names_the_groups(cli: Cli, billing: App) -> None:
    result = cli("dlq", "replay", "--group", "biling")
    assert result.exit_code == 1
    assert "No consumer group 'biling'" in result.stderr and "'billing'" in result.stderr


def test_an_event_dead_lettered_twice_is_replayed_once(cli: Cli) -> None:
    """Replay --id while the handler still fails, fix it, replay the group: handled once."""
    app = App("cli-dlq-twice", broker=cli.broker)
    charges = app.topic("charges", partitions=2)
    broken = threading.Event()
    broken.set()
    handled: list[int] = []

    @app.consumer(charges, group="billing", retry=Retry(attempts=1))
    def charge(event: CliCardCharged) -> None:
        if broken.is_set():
            raise ValueError(f"card {event.n} declined")
        handled.append(event.n)

    def letters() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = cli.json("dlq", "list")["dead_letters"]
        return found

    with contextlib.closing(app), app.running():
        app.publish(charges, CliCardCharged(n=1), key="1")
        app.publish(charges, CliCardCharged(n=2), key="2")
        wait_until(lambda: len(letters()) == 2, what="both events dead-lettered")
        first = next(d for d in letters() if d["value"] == {"n": 1})
        assert first["status"] == "pending"
        assert cli.json("dlq", "replay", "--group", "billing", "--id", first["id"])["replayed"] == 1
        wait_until(
            lambda: any(d["dead_letters"] == 2 for d in letters()),
            what="the replayed event to fail again",
        )
        again = next(d for d in letters() if d["id"] == first["id"])
        assert again["status"] == "failed-again" and len(letters()) == 2
        broken.clear()
        out = cli.json("dlq", "replay", "--group", "billing")
        assert out["replayed"] == 2 and sorted(out["ids"]) == sorted(d["id"] for d in letters())
        wait_until(lambda: cli.lag("billing") == 0 and len(handled) >= 2, what="replays handled")
    assert sorted(handled) == [1, 2]
    assert {d["status"] for d in letters()} == {"replayed"}
    assert cli.json("dlq", "replay", "--group", "billing")["replayed"] == 0


def test_duplicate_dead_letters_of_one_event_show_as_one_row(cli: Cli, billing: App) -> None:
    """A worker that crashed after dead-lettering may dead-letter the same event again."""
    add_dead_letter(cli.broker, n=9, event_id="evt-9")
    add_dead_letter(cli.broker, n=9, event_id="evt-9")
    rows = [d for d in cli.json("dlq", "list")["dead_letters"] if d["id"] == "evt-9"]
    assert len(rows) == 1 and rows[0]["dead_letters"] == 2 and rows[0]["status"] == "pending"
    out = cli.json("dlq", "replay", "--group", "billing")
    assert out["replayed"] == 4 and out["ids"].count("evt-9") == 1


def test_a_deeply_nested_dead_letter_does_not_hide_the_others(cli: Cli, billing: App) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    add_dead_letter(cli.broker, n=0, event_id="evt-deep", value=deep)
    text = cli.ok("dlq", "list").stdout
    assert "card 1 declined" in text and "evt-deep" in text
    letters = cli.json("dlq", "list")["dead_letters"]
    (row,) = [d for d in letters if d["id"] == "evt-deep"]
    assert row["value"] == "(value too deeply nested to display, 200,000 bytes)"
    assert len(letters) == 4


def add_dead_letter(
    url: str, *, n: int, event_id: str | None = None, value: bytes | None = None
) -> None:
    backend = open_backend(url)
    try:
        headers = ((H_ID, event_id.encode()),) if event_id else ()
        body = value if value is not None else b'{"n": %d}' % n
        original = Record("charges", 0, 99, b"k", body, headers, time.time())
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
