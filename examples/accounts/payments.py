"""payments (group ``payments``): freeze a banned account's payment methods, then settle.

Settlement waits on the bank and takes seconds (12 in the demo), far longer than an HTTP
request should, which is why the ban endpoint answers 202 and this work runs downstream.
tidings keeps the group's membership alive while the handler runs, so a long handler is
not mistaken for a dead consumer and its event is not redelivered to someone else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from datetime import timedelta

from tidings import App, Context

from .events import AccountBanned, PaymentMethodsFrozen, account_events

log = logging.getLogger("accounts.payments")


class Payments:
    """The payments service's own state: frozen payment methods and finished settlements.

    It lives in memory to keep the example small; a real service keeps it in its database
    and records handled event ids in the same transaction as the change.
    """

    def __init__(self) -> None:
        self.frozen: dict[str, int] = {}
        """Account id -> how many payment methods were frozen."""
        self.settled: set[str] = set()
        self._handled: set[str] = set()
        self._lock = threading.Lock()

    def freeze(self, account_id: str) -> int:
        """Freeze every payment method of the account (idempotent); return how many."""
        with self._lock:
            # Stands in for a lookup: each account has one to three cards.
            methods = 1 + zlib.crc32(account_id.encode()) % 3
            self.frozen[account_id] = methods
            return methods

    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool:
        """Return whether this service finished the event (the demo's ledger asks)."""
        with self._lock:
            return event_id in self._handled

    def mark_handled(self, event_id: str, account_id: str) -> None:
        with self._lock:
            self.settled.add(account_id)
            self._handled.add(event_id)


def register(app: App, *, settlement: timedelta, concurrency: int = 64) -> Payments:
    """Declare the payments consumer on `app`; return the service's state."""
    payments = Payments()

    # concurrency: up to 64 bans settle at once, so one slow bank call does not hold up
    # the next accounts. Events of one account (one key) still run one at a time, in order.
    # timeout: generous, yet a hung bank call still ends in a retry instead of forever.
    @app.consumer(
        account_events,
        group="payments",
        concurrency=concurrency,
        timeout=settlement * 3 + timedelta(seconds=30),
    )
    async def freeze_payment_methods(event: AccountBanned, ctx: Context) -> None:
        """Freeze the banned account's cards at once, then settle what it owes."""
        # Delivery is at least once: after a crash an event may come again.
        if payments.has_handled(ctx.event_id, ctx.event_type, event.account_id):
            return
        methods = payments.freeze(event.account_id)
        # A follow-up event: everyone listening to account-events learns the cards are
        # frozen (notifications tells the customer). ctx.publish links it to the ban.
        await ctx.publish_async(
            account_events,
            PaymentMethodsFrozen(account_id=event.account_id, methods=methods),
            key=event.account_id,
        )
        log.info("froze %d payment method(s) of %s; settling", methods, event.account_id)
        await asyncio.sleep(settlement.total_seconds())  # the bank settling the balance
        payments.mark_handled(ctx.event_id, event.account_id)
        log.info("settled %s", event.account_id)

    return payments
