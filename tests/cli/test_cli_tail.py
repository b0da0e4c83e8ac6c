"""`tidings tail`: the last events, everything from the beginning, or following new ones."""

from __future__ import annotations

import threading

from tests.cli.conftest import Cli, ProjectDir
from tidings.backends.registry import open_backend
from tidings.records import OutgoingRecord, TopicSpec
from tidings.wire import H_TYPE, ce_headers


def fill(url: str, topic: str, count: int, partitions: int = 1) -> None:
    backend = open_backend(url)
    try:
        backend.ensure_topics([TopicSpec(topic, partitions)])
        backend.produce(
            [
                OutgoingRecord(
                    topic, f"k{i}".encode(), b'{"n": %d}' % i, ((H_TYPE, b"Tick"),), i % partitions
                )
                for i in range(count)
            ]
        )
    finally:
        backend.close()


def test_default_prints_the_last_ten_events(cli: Cli) -> None:
    fill(cli.broker, "ticks", 30)
    lines = cli.ok("tail", "ticks").stdout.splitlines()
    assert len(lines) == 10
    assert "ticks[0]@20" in lines[0] and "ticks[0]@29" in lines[-1]
    assert "key=k29" in lines[-1] and "Tick" in lines[-1] and '{"n":29}' in lines[-1]


def test_n_chooses_how_many(cli: Cli) -> None:
    fill(cli.broker, "ticks", 12, partitions=3)
    records = cli.json_lines("tail", "ticks", "-n", "4")
    assert len(records) == 4
    assert {r["value"]["n"] for r in records} <= set(range(12))
    assert cli.ok("tail", "ticks", "-n", "0").stdout == ""


def test_from_beginning_reads_everything_or_stops_after_n(cli: Cli) -> None:
    fill(cli.broker, "ticks", 25, partitions=2)
    everything = cli.json_lines("tail", "ticks", "--from-beginning")
    assert sorted(r["value"]["n"] for r in everything) == list(range(25))
    first = cli.json_lines("tail", "ticks", "--from-beginning", "-n", "3")
    assert len(first) == 3


def test_an_empty_topic_says_so(cli: Cli) -> None:
    cli.ok("topics", "create", "quiet")
    result = cli.ok("tail", "quiet")
    assert result.stdout == "" and "No events in 'quiet'" in result.stderr


def test_follow_prints_new_events_and_stops_after_n(cli: Cli) -> None:
    fill(cli.broker, "ticks", 3)
    stop = threading.Event()

    def keep_publishing() -> None:
        backend = open_backend(cli.broker)
        try:
            while not stop.wait(0.05):
                backend.produce([OutgoingRecord("ticks", b"new", b'{"n": -1}', ((H_TYPE, b"T"),))])
        finally:
            backend.close()

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        followed = cli.json_lines("tail", "ticks", "--follow", "-n", "2")
    finally:
        stop.set()
        publisher.join()
    assert [r["value"] for r in followed] == [{"n": -1}, {"n": -1}]
    replayed = cli.json_lines("tail", "ticks", "--follow", "--from-beginning", "-n", "3")
    assert [r["value"]["n"] for r in replayed] == [0, 1, 2]


def test_tail_of_a_missing_topic_is_an_error(cli: Cli) -> None:
    cli.ok("topics", "create", "other")  # a store without the topic (no store: another error)
    result = cli("tail", "nothing-here")
    assert result.exit_code == 1
    assert "No topic 'nothing-here'" in result.stderr


def test_n_larger_than_the_topic_prints_every_event(cli: Cli) -> None:
    fill(cli.broker, "ticks", 3, partitions=2)
    records = cli.json_lines("tail", "ticks", "-n", "10")
    assert sorted(r["value"]["n"] for r in records) == [0, 1, 2]
    assert len(cli.json_lines("tail", "ticks", "-n", "5")) == 3


def test_a_deeply_nested_value_is_summarised_and_the_rest_shown(cli: Cli) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    backend = open_backend(cli.broker)
    try:
        backend.ensure_topics([TopicSpec("nested", 1)])
        backend.produce(
            [
                OutgoingRecord("nested", b"a", b'{"n": 1}', ((H_TYPE, b"Tick"),)),
                OutgoingRecord("nested", b"b", deep, ((H_TYPE, b"Tick"),)),
                OutgoingRecord("nested", b"c", b"[" * 500 + b"]" * 500, ((H_TYPE, b"Tick"),)),
            ]
        )
    finally:
        backend.close()
    text = cli.ok("tail", "nested", "--from-beginning").stdout
    assert '{"n":1}' in text
    assert "(value too deeply nested to display, 200,000 bytes)" in text
    assert "(value too deeply nested to display, 1,000 bytes)" in text
    records = cli.json_lines("tail", "nested", "--from-beginning")
    assert records[0]["value"] == {"n": 1}
    assert records[1]["value"] == "(value too deeply nested to display, 200,000 bytes)"


VERSIONED_APP = """
from typing import Any
from tidings import App, Event, upcaster

app = App("versioned")
people = app.topic("people")


class TailPerson(Event, version=2):
    event_type = f"{__name__}.Person"  # one type per test module: tests import it per backend
    full_name: str


@upcaster(TailPerson, from_version=1)
def _v1(payload: dict[str, Any]) -> dict[str, Any]:
    return {"full_name": payload["name"]}
"""


def test_app_shows_values_at_the_current_version(cli: Cli, project: ProjectDir) -> None:
    module = project.module(VERSIONED_APP, "tail")
    etype = f"{module}.Person".encode()
    backend = open_backend(cli.broker)
    try:
        backend.ensure_topics([TopicSpec("people", 1)])
        v3 = ce_headers(b"i3", b"s", etype, b"2026-01-01T00:00:00Z", b"urn:tidings:event:x:v3")
        backend.produce(
            [
                OutgoingRecord("people", b"a", b'{"name": "Ada"}', ((H_TYPE, etype),)),
                OutgoingRecord("people", b"b", b'{"whatever": 1}', v3),
            ]
        )
    finally:
        backend.close()
    raw, newer = cli.json_lines("tail", "people", "--from-beginning", "--app", f"{module}:app")
    assert raw["value"] == {"full_name": "Ada"}
    assert newer["value"] == {"whatever": 1}
    assert newer["headers"]["tidings-decode-error"].startswith("version_too_new: ")
    plain = cli.json_lines("tail", "people", "--from-beginning")
    assert plain[0]["value"] == {"name": "Ada"}
