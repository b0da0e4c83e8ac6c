"""tidings.testing.Harness: users' handler tests without a broker or real waiting."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tidings import App, Context, Event, Retry
from tidings.records import OutgoingRecord
from tidings.testing import FakeClock, Harness
from tidings.wire import H_TYPE


class HarnessBanned(Event):
    account_id: str


class HarnessReminder(Event):
    account_id: str


def build() -> tuple[App, list[str], list[str]]:
    app = App("harness-test", broker="memory://never-used")
    events = app.topic("account-events", partitions=2)
    reminders = app.topic("reminders")
    frozen: list[str] = []
    reminded: list[str] = []

    @app.consumer(events, group="payments", retry=Retry(attempts=3, backoff=60))
    def freeze(e: HarnessBanned, ctx: Context) -> None:
        if e.account_id == "flaky" and ctx.attempt == 1:
            raise ConnectionError("bank API down")
        if e.account_id == "broken":
            raise ValueError("no such account")
        frozen.append(e.account_id)
        ctx.publish(reminders, HarnessReminder(account_id=e.account_id), delay=timedelta(days=30))

    @app.consumer(reminders, group="notifications")
    def remind(e: HarnessReminder) -> None:
        reminded.append(e.account_id)

    return app, frozen, reminded


def test_drain_handles_everything_and_skips_retry_waits() -> None:
    app, frozen, reminded = build()
    started = time.monotonic()
    with Harness(app) as h:
        for account in ("42", "flaky", "broken"):
            h.publish("account-events", HarnessBanned(account_id=account), key=account)
        h.drain()
        assert sorted(frozen) == ["42", "flaky"]
        (letter,) = h.dead_letters("account-events", "payments")
        assert letter.event == HarnessBanned(account_id="broken")
        assert letter.reason == "handler_error" and letter.attempts == 3
        assert letter.error == "ValueError: no such account"
        assert letter.topic == "account-events" and letter.event_type == "HarnessBanned"
        assert reminded == []  # due in 30 days
        h.advance(timedelta(days=29))
        assert reminded == []
        h.advance(timedelta(days=1, seconds=1))
        assert sorted(reminded) == ["42", "flaky"]
    # Two 60 s backoffs and a 30-day delay took no real time.
    assert time.monotonic() - started < 15


def test_fake_clock_fires_timers_in_order_and_refuses_going_back() -> None:
    clock = FakeClock(start=100.0)
    fired: list[str] = []
    clock.call_later(5, lambda: fired.append("b"))
    clock.call_later(1, lambda: fired.append("a"))
    cancelled = clock.call_later(2, lambda: fired.append("never"))
    cancelled.cancel()
    clock.advance(10)
    assert fired == ["a", "b"] and clock.time() == 110.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_dead_letters_keep_the_raw_value_when_it_cannot_be_decoded() -> None:
    app, _, _ = build()
    with Harness(app) as h:
        h.backend.produce(
            [OutgoingRecord("account-events", b"k", b"{not json", ((H_TYPE, b"HarnessBanned"),))]
        )
        h.drain()
        (letter,) = h.dead_letters("account-events", "payments")
        assert letter.event is None and letter.value == b"{not json"
        assert letter.reason == "bad_json" and letter.error_type == "DecodeError"


def test_the_app_gets_its_own_broker_back_after_the_harness() -> None:
    app, _, _ = build()
    with Harness(app) as h:
        assert app.backend is h.backend
    assert app.backend is not h.backend and app.broker_url == "memory://never-used"
    app.close()
