"""notifications (group ``notifications``): tell the customer about every account event.

Two lessons live here. Failures: the email gateway is sometimes down (a transient error,
retried with backoff) and some addresses bounce (a permanent error: retrying cannot help,
so the event goes straight to the dead-letter topic ``account-events.notifications.dlq``).
Delays: on a ban, a reminder is scheduled with ``ctx.publish(..., delay=...)`` onto the
``account-reminders`` topic, which this same group consumes when the reminder is due.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tidings import App, Context, Published, Retry

from .events import (
    AccountBanned,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    BanReminderDue,
    PaymentMethodsFrozen,
    account_events,
    account_reminders,
)

log = logging.getLogger("accounts.notifications")

BOUNCING_DOMAIN = "bounce.invalid"
"""Mail to this domain always bounces (the demo opens a few such accounts)."""


class GatewayUnavailable(Exception):
    """The email provider did not answer: worth retrying."""


class UndeliverableAddress(Exception):
    """The address bounced: retrying cannot help."""


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    account_id: str
    sent_at: float


class EmailGateway:
    """A stand-in for an email provider: down `failure_rate` of the time; some mail bounces."""

    def __init__(self, *, failure_rate: float = 0.0, seed: int | None = None) -> None:
        self.failure_rate = failure_rate
        self.outbox: list[Email] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    async def send(self, to: str, subject: str, account_id: str) -> None:
        await asyncio.sleep(0)  # a real gateway is an HTTP call
        if to.endswith("@" + BOUNCING_DOMAIN):
            raise UndeliverableAddress(f"{to} bounced")
        with self._lock:
            if self._random.random() < self.failure_rate:
                raise GatewayUnavailable("email gateway timed out")
            self.outbox.append(Email(to, subject, account_id, time.time()))
        log.info("emailed %s: %s", to, subject)

    def sent_to(self, account_id: str) -> list[Email]:
        with self._lock:
            return [e for e in self.outbox if e.account_id == account_id]


SUBJECTS: dict[type[AccountEvent], str] = {
    AccountOpened: "Welcome! Your account is open",
    AccountBanned: "Your account has been suspended",
    PaymentMethodsFrozen: "Your payment methods are frozen",
    AccountClosed: "Your account is closed",
}
REMINDER_SUBJECT = "Reminder: your account is still suspended"


class Notifications:
    """The notifications service's state: addresses it learned and what it handled."""

    def __init__(self, gateway: EmailGateway) -> None:
        self.gateway = gateway
        self.addresses: dict[str, str] = {}
        """Account id -> email, learned from AccountOpened (no call back to accounts)."""
        self.reminders_scheduled: dict[str, Published] = {}
        """Account id -> its ban reminder (with `deliver_at`, when it is due)."""
        self._handled: set[str] = set()
        self._lock = threading.Lock()

    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool:
        with self._lock:
            return event_id in self._handled

    def mark_handled(self, event_id: str) -> None:
        with self._lock:
            self._handled.add(event_id)


def register(
    app: App, *, reminder_delay: timedelta, gateway: EmailGateway | None = None
) -> Notifications:
    """Declare the notifications consumers on `app`; return the service's state."""
    notifications = Notifications(gateway or EmailGateway())
    # Up to 5 attempts with backoff from 0.1 s; a bounce is dead-lettered at once.
    retry = Retry(attempts=5, backoff=0.1, give_up_on=(UndeliverableAddress,))

    @app.consumer(account_events, group="notifications", concurrency=16, retry=retry)
    async def tell_customer(event: AccountEvent, ctx: Context) -> None:
        """Email the customer about what happened; on a ban, schedule a reminder."""
        if isinstance(event, AccountOpened):
            # Keep what later events need. One account's events share a key, so this
            # AccountOpened is always handled before that account's other events.
            notifications.addresses[event.account_id] = event.email
        if notifications.has_handled(ctx.event_id, ctx.event_type, event.account_id):
            return
        address = notifications.addresses.get(event.account_id)
        if address is not None:
            await notifications.gateway.send(address, SUBJECTS[type(event)], event.account_id)
        else:
            log.warning("no address known for %s; not emailed", event.account_id)
        if isinstance(event, AccountBanned):
            # A delayed event: stored now, delivered when due (days in production, seconds
            # in the demo), even if every process restarts in between.
            published = await ctx.publish_async(
                account_reminders,
                BanReminderDue(account_id=event.account_id, banned_at=_utc(ctx.timestamp)),
                key=event.account_id,
                delay=reminder_delay,
            )
            notifications.reminders_scheduled[event.account_id] = published
        notifications.mark_handled(ctx.event_id)

    @app.consumer(account_reminders, group="notifications", concurrency=16, retry=retry)
    async def send_ban_reminder(event: BanReminderDue, ctx: Context) -> None:
        """Remind a banned customer, once the reminder is due."""
        if notifications.has_handled(ctx.event_id, ctx.event_type, event.account_id):
            return
        address = notifications.addresses.get(event.account_id)
        if address is not None:
            await notifications.gateway.send(address, REMINDER_SUBJECT, event.account_id)
        else:
            log.warning("no address known for %s; reminder not sent", event.account_id)
        notifications.mark_handled(ctx.event_id)

    return notifications


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
