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

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tidings import App, Context
from tidings.outbox import Inbox

from .events import AccountBanned, PaymentMethodsFrozen, account_events

log = logging.getLogger("accounts.payments")


class Payments:
    """The payments service's state: frozen payment methods, and settlements in its database.

    A settlement is recorded in the same transaction as the inbox claim of its ban, so a
    ban redelivered after a crash or a rebalance is never settled twice.
    """

    def __init__(self, engine: Engine, inbox: Inbox) -> None:
        self.engine = engine
        self.inbox = inbox
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS settlements (account_id TEXT, event_id TEXT)")
            )
        self.frozen: dict[str, int] = {}
        """Account id -> how many payment methods were frozen."""
        self.settled: set[str] = set()
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
        with Session(self.engine) as s:
            found = s.execute(
                text(
                    "SELECT 1 FROM tidings_inbox WHERE group_name = 'payments' AND event_id = :id"
                ),
                {"id": event_id},
            ).first()
        return found is not None

    def settle(self, ctx: Context, account_id: str) -> bool:
        """Record the settlement, once per ban: False if this ban was settled before."""
        with Session(self.engine) as s, s.begin():
            if not self.inbox.claim(s, ctx):
                return False
            s.execute(
                text("INSERT INTO settlements VALUES (:account, :event)"),
                {"account": account_id, "event": ctx.event_id},
            )
        with self._lock:
            self.settled.add(account_id)
        return True


def register(
    app: App, *, engine: Engine, inbox: Inbox, settlement: timedelta, concurrency: int = 64
) -> Payments:
    """Declare the payments consumer on `app`; return the service's state."""
    payments = Payments(engine, inbox)

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
        # Delivery is at least once: after a crash an event may come again. The inbox
        # (claimed in `settle`) makes the settlement happen once; this early check only
        # saves the work.
        if await asyncio.to_thread(
            payments.has_handled, ctx.event_id, ctx.event_type, event.account_id
        ):
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
        if await asyncio.to_thread(payments.settle, ctx, event.account_id):
            log.info("settled %s", event.account_id)

    return payments
