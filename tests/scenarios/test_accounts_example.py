"""The reference account system (examples/accounts) behaves as its README says.

Each consumer group is checked through the state its service keeps, on the memory and
embedded backends, with timings shrunk so the whole file runs in seconds.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from examples.accounts.events import AccountBanned
from examples.accounts.notifications import REMINDER_SUBJECT, SUBJECTS
from examples.accounts.service import AccountsHTTPServer
from examples.accounts.system import AccountSystem, Settings, build_system

from tests.helpers import wait_until
from tidings import Batch

FAST = Settings(
    settlement=timedelta(seconds=0.2),
    reminder_delay=timedelta(seconds=1.0),
    follow_up_delay=timedelta(seconds=0.5),
    analytics_batch=Batch(max_size=50, max_wait=0.05),
)


def _build(kind: str, tmp_path: Path, settings: Settings = FAST) -> AccountSystem:
    if kind == "memory":
        return build_system(f"memory://{uuid.uuid4().hex}", settings)
    return build_system(f"embedded://{tmp_path / 'data'}", settings)


@pytest.fixture(params=["memory", "embedded"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountSystem]:
    built = _build(request.param, tmp_path)
    try:
        yield built
    finally:
        built.close()


def test_payments_freezes_only_banned_accounts(system: AccountSystem) -> None:
    service, payments = system.service, system.payments
    with system.app.running():
        kept = service.open("Ada", "ada@example.com").account.id
        banned = service.open("Ken", "ken@example.com").account.id
        closed = service.open("Tony", "tony@example.com").account.id
        ban = service.ban(banned, "fraud")
        service.close(closed)
        wait_until(lambda: banned in payments.settled, 10, "the ban to settle")
        # The later events of the other accounts have been seen by now too (analytics
        # counts them), so "not frozen" is not merely "not yet".
        wait_until(lambda: system.analytics.counts().get("AccountClosed") == 1, 10, "analytics")
    assert set(payments.frozen) == {banned}
    assert payments.frozen[banned] in (1, 2, 3)
    assert payments.has_handled(ban.event_id, AccountBanned.event_type, banned)
    assert kept not in payments.settled and closed not in payments.settled


def test_notifications_tells_customers_and_reminds_after_the_delay(
    system: AccountSystem,
) -> None:
    service, notifications = system.service, system.notifications
    gateway = notifications.gateway
    with system.app.running():
        account = service.open("Grace", "grace@example.com").account.id
        service.ban(account, "chargebacks")
        wait_until(lambda: account in notifications.reminders_scheduled, 10, "the reminder")
        due = notifications.reminders_scheduled[account].deliver_at
        assert due is not None
        if time.time() < due - 0.1:  # only meaningful while the reminder is not yet due
            assert REMINDER_SUBJECT not in [e.subject for e in gateway.sent_to(account)]
        wait_until(
            lambda: any(e.subject == REMINDER_SUBJECT for e in gateway.sent_to(account)),
            10,
            "the reminder email",
        )
    emails = gateway.sent_to(account)
    reminder = next(e for e in emails if e.subject == REMINDER_SUBJECT)
    assert reminder.sent_at >= due
    assert reminder.to == "grace@example.com"
    subjects = {e.subject for e in emails}
    assert {SUBJECTS[t] for t in SUBJECTS if t.__name__ != "AccountClosed"} <= subjects


def test_bounced_email_is_dead_lettered_not_retried(system: AccountSystem) -> None:
    service, notifications = system.service, system.notifications
    with system.app.running() as runner:
        worker = next(w for w in runner.workers if w.group == "notifications")
        bounced = service.open("Alan", "alan@bounce.invalid")
        fine = service.open("Edsger", "edsger@example.com").account.id
        wait_until(lambda: bool(notifications.gateway.sent_to(fine)), 10, "the good email")
        wait_until(lambda: worker.statistics()["dead_lettered"] == 1, 10, "a dead letter")
        stats = worker.statistics()
    assert stats["retried"] == 0  # give_up_on: a bounce is never retried
    assert not notifications.has_handled(bounced.event_id, "AccountOpened", bounced.account.id)
    dlq = {i.name: sum(i.end_offsets) for i in system.app.backend.topics()}
    assert dlq["account-events.notifications.dlq"] == 1


def test_analytics_counts_every_event_once_in_batches(system: AccountSystem) -> None:
    service, analytics = system.service, system.analytics
    with system.app.running():
        ids = [service.open(f"user{i}", f"user{i}@example.com").account.id for i in range(30)]
        for account in ids[:10]:
            service.ban(account, "fraud")
        for account in ids[5:20]:
            service.close(account)
        expected = {
            "AccountOpened": 30,
            "AccountBanned": 10,
            "PaymentMethodsFrozen": 10,
            "AccountClosed": 15,
        }
        wait_until(lambda: analytics.counts() == expected, 10, "the counts")
    assert analytics.batches < sum(expected.values())  # handled in batches, not one by one


def test_onboarding_welcomes_and_follows_up_only_open_accounts(system: AccountSystem) -> None:
    service, onboarding = system.service, system.onboarding
    with system.app.running():
        stays = service.open("Barbara", "barbara@example.com").account.id
        leaves = service.open("Leslie", "leslie@example.com").account.id
        service.close(leaves)
        wait_until(lambda: stays in onboarding.follow_ups_scheduled, 10, "a follow-up")
        assert stays not in onboarding.followed_up  # scheduled, not yet due
        wait_until(
            lambda: {stays, leaves} <= onboarding.followed_up | onboarding.follow_ups_skipped,
            10,
            "both follow-ups",
        )
    assert onboarding.followed_up == {stays}
    assert onboarding.follow_ups_skipped == {leaves}
    assert len(onboarding.welcomed[stays]) == 3
    assert onboarding.follow_ups_scheduled[stays].deliver_at is not None


def test_http_api_answers_ban_with_202_before_payments_settle(tmp_path: Path) -> None:
    slow = Settings(settlement=timedelta(seconds=1.5))
    system = _build("memory", tmp_path, slow)
    try:
        with system.app.running(), AccountsHTTPServer(system.service, port=0) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                call = _client(server.server_port)
                status, opened = call("POST", "/accounts", {"name": "Ada", "email": "a@x.org"})
                assert status == 201 and opened["status"] == "open"
                account = opened["id"]
                status, banned = call("POST", f"/accounts/{account}/ban", {"reason": "fraud"})
                assert status == 202 and banned["status"] == "banned" and banned["event_id"]
                assert account not in system.payments.settled  # the work is downstream
                status, got = call("GET", f"/accounts/{account}", None)
                assert status == 200 and got["id"] == account and got["status"] == "banned"
                assert call("POST", f"/accounts/{account}/ban", {})[0] == 409
                assert call("GET", "/accounts/nope", None)[0] == 404
                assert call("POST", "/accounts", {"name": "no email"})[0] == 400
                status, closed = call("POST", f"/accounts/{account}/close", None)
                assert status == 202 and closed["status"] == "closed"
                wait_until(lambda: account in system.payments.settled, 10, "the settlement")
            finally:
                server.shutdown()
    finally:
        system.close()


Call = Callable[[str, str, object], tuple[int, dict[str, object]]]


def _client(port: int) -> Call:
    def call(method: str, path: str, body: object) -> tuple[int, dict[str, object]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, payload, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    return call


def test_tidings_run_loads_the_example_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.cli.loader import load_app

    # Not ./accounts.db, the database `tidings run` processes share by default.
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", f"sqlite:///{tmp_path / 'accounts.db'}")
    app = load_app("examples.accounts.app:app")
    assert app.groups() == ["payments", "notifications", "analytics", "onboarding"]
    assert app.topics["account-events"].partitions == 3
