"""Nothing fails silently: undecodable records are dead-lettered, runtime failures stop the app.

Any exception while decoding or validating a record (whatever its type) dead-letters that
record with its reason, and the partition flows on. An exception the runtime does not
expect (here: a handler raising a BaseException that is not an Exception) is logged and
stops the app with an error, instead of leaving a dead worker and a stalled group behind.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import field_validator

from tests.helpers import wait_until
from tidings import App, ConsumerFailed, Event, TidingsError


class Picky(Event):
    n: int
    colour: str

    @field_validator("colour")
    @classmethod
    def known_colour(cls, value: str) -> str:
        if value == "octarine":
            raise TypeError("octarine is not a colour this system can store")
        return value


class Meltdown(BaseException):
    """Not an Exception: escapes `except Exception` in the runtime."""


@pytest.fixture
def app(broker_url: str) -> Iterator[App]:
    app = App("failures", broker=broker_url)
    yield app
    app.close()


def read_all(app: App, topic: str, expect: int) -> list:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list = []
    for _ in range(200):
        records += reader.fetch(500, 0.1)
        if len(records) >= expect:
            break
    reader.close()
    return records


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_validator_raising_any_exception_dead_letters_the_record(
    app: App, topic_name: str, kind: str
) -> None:
    topic = app.topic(topic_name)
    handled: list[int] = []

    if kind == "async":

        @app.consumer(topic, group="paint")
        async def paint(e: Picky) -> None:
            handled.append(e.n)

    else:

        @app.consumer(topic, group="paint")
        def paint_sync(e: Picky) -> None:
            handled.append(e.n)

    good = [Picky(n=0, colour="red"), Picky(n=2, colour="blue")]
    app.publish(topic, good[0], key="k")
    app.backend.produce([_raw(topic_name, b'{"n": 1, "colour": "octarine"}')])
    app.publish(topic, good[1], key="k")
    with app.running():
        wait_until(lambda: len(handled) == 2, 30, "the events after the bad one")
    assert handled == [0, 2]
    (letter,) = read_all(app, f"{topic_name}.paint.dlq", 1)
    headers = dict(letter.headers)
    assert headers["tidings-dlq-reason"] == b"schema_violation"
    assert b"octarine is not a colour" in headers["tidings-dlq-error-message"]
    assert letter.value == b'{"n": 1, "colour": "octarine"}'


def _raw(topic: str, value: bytes):  # type: ignore[no-untyped-def]
    from tidings.records import OutgoingRecord

    return OutgoingRecord(
        topic, b"k", value, (("ce_type", b"Picky"), ("content-type", b"application/json"))
    )


def test_an_unexpected_error_in_the_runtime_is_logged_and_stops_the_app(
    app: App, topic_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = app.topic(topic_name)

    @app.consumer(topic, group="reactor")
    async def react(e: Picky) -> None:
        raise Meltdown("core temperature exceeded")

    app.publish(topic, Picky(n=1, colour="red"), key="k")
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            asyncio.run(asyncio.wait_for(app.serve(), 60))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    with caplog.at_level(logging.ERROR, logger="tidings"):
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        thread.join(30)
        stopped = not thread.is_alive()
        thread.join(40)  # on failure, let the 60 s bound end it before the app closes
    assert stopped, "the app kept running with a dead consumer"
    (error,) = outcome
    assert isinstance(error, ConsumerFailed), repr(error)
    assert "reactor" in str(error) and "Meltdown" in str(error)
    logged = [r.getMessage() + repr(r.exc_info) for r in caplog.records]
    assert any("core temperature exceeded" in line for line in logged), logged


def test_a_failing_poll_thread_stops_the_app_with_its_error(
    tmp_path: Path, topic_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("failures", broker=f"embedded://{tmp_path / 'data'}")
    topic = app.topic(topic_name)
    handled: list[int] = []

    @app.consumer(topic, group="paint")
    async def paint(e: Picky) -> None:
        handled.append(e.n)

    app.publish(topic, Picky(n=0, colour="red"), key="k")
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            asyncio.run(asyncio.wait_for(app.serve(), 60))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    try:
        with caplog.at_level(logging.ERROR, logger="tidings"):
            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            wait_until(lambda: handled == [0], 30, "the first event")
            with sqlite3.connect(tmp_path / "data" / "tidings.db") as raw:
                raw.execute("DROP TABLE records")  # the store is broken under the consumer
            thread.join(30)
            stopped = not thread.is_alive()
            thread.join(40)
    finally:
        app.close()
    assert stopped, "the app kept running without its consumer"
    (error,) = outcome
    assert isinstance(error, TidingsError), repr(error)
    assert "records" in str(error)
    assert any("consumer failed" in r.getMessage() for r in caplog.records)
