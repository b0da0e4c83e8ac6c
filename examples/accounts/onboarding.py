"""onboarding (group ``onboarding``): welcome new customers, and follow up a few days later.

The follow-up is a delayed event this group schedules for itself. A delayed event cannot
be called back, so when it is due the handler checks what it has learned since: an
account that was banned or closed meanwhile gets no follow-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

from tidings import App, Context, Published

from .events import (
    AccountBanned,
    AccountClosed,
    AccountOpened,
    OnboardingFollowUpDue,
    account_events,
    onboarding_follow_ups,
)

log = logging.getLogger("accounts.onboarding")

WELCOME_STEPS = ("create profile checklist", "grant welcome credit", "send getting-started guide")


class Onboarding:
    """The onboarding service's state: where each new account is in its journey."""

    def __init__(self) -> None:
        self.welcomed: dict[str, list[str]] = {}
        """Account id -> the welcome steps done for it."""
        self.followed_up: set[str] = set()
        self.follow_ups_skipped: set[str] = set()
        self.follow_ups_scheduled: dict[str, Published] = {}
        """Account id -> its follow-up (with `deliver_at`, when it is due)."""
        self.gone: set[str] = set()
        """Accounts banned or closed: no more onboarding for them."""
        self._handled: set[str] = set()
        self._lock = threading.Lock()

    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool:
        with self._lock:
            return event_id in self._handled

    def mark_handled(self, event_id: str) -> None:
        with self._lock:
            self._handled.add(event_id)


def register(app: App, *, follow_up_delay: timedelta) -> Onboarding:
    """Declare the onboarding consumers on `app`; return the service's state."""
    onboarding = Onboarding()

    @app.consumer(account_events, group="onboarding", concurrency=8)
    async def welcome(event: AccountOpened | AccountBanned | AccountClosed, ctx: Context) -> None:
        """Run the welcome flow for a new account; remember accounts that left."""
        if onboarding.has_handled(ctx.event_id, ctx.event_type, event.account_id):
            return
        if not isinstance(event, AccountOpened):
            onboarding.gone.add(event.account_id)
            onboarding.mark_handled(ctx.event_id)
            return
        steps = onboarding.welcomed.setdefault(event.account_id, [])
        for step in WELCOME_STEPS:
            if step not in steps:  # a redelivered event resumes where it stopped
                await asyncio.sleep(0.001)  # each step calls some other system
                steps.append(step)
        published = await ctx.publish_async(
            onboarding_follow_ups,
            OnboardingFollowUpDue(
                account_id=event.account_id, opened_at=datetime.fromtimestamp(ctx.timestamp, UTC)
            ),
            key=event.account_id,
            delay=follow_up_delay,
        )
        onboarding.follow_ups_scheduled[event.account_id] = published
        log.info("welcomed %s; follow-up scheduled", event.account_id)
        onboarding.mark_handled(ctx.event_id)

    @app.consumer(onboarding_follow_ups, group="onboarding", concurrency=8)
    async def follow_up(event: OnboardingFollowUpDue, ctx: Context) -> None:
        """Nudge the customer to finish setting up, unless the account is gone."""
        if event.account_id in onboarding.gone:
            onboarding.follow_ups_skipped.add(event.account_id)
            log.info("no follow-up for %s: the account is gone", event.account_id)
        else:
            onboarding.followed_up.add(event.account_id)
            log.info("followed up %s", event.account_id)
        onboarding.mark_handled(ctx.event_id)

    return onboarding
