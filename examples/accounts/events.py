"""The contract between the services: the topics and the events that travel on them.

Every service imports this module and nothing else of the others: the accounts service
publishes account events without knowing who listens, and each consumer group reads them
at its own pace. Changing an event here is changing an API: fields are added with defaults;
an incompatible change bumps the event's version and adds an upcaster (see AccountBanned).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings import Event, Topic, upcaster

account_events = Topic("account-events", partitions=3)
"""What happened to an account, keyed by account id so one account's events stay in order."""

account_reminders = Topic("account-reminders", partitions=3)
"""Notifications' reminders: delayed events it publishes for itself, keyed by account id."""

onboarding_follow_ups = Topic("onboarding-follow-ups", partitions=3)
"""Onboarding's follow-ups: delayed events it publishes for itself, keyed by account id."""


# -- published by the accounts service -----------------------------------------------------


class AccountOpened(Event):
    account_id: str
    name: str
    email: str


class AccountBanned(Event, version=2):
    """An account was banned. Version 2 says who banned it; version 1 events did not.

    Making `banned_by` required is an incompatible change (a v1 event has no such field),
    so the version went up and `_who_banned_v1` upcasts the v1 events still on the topic.
    `tidings schema check examples.accounts.app:app` (see tidings.schema.lock) keeps
    every other change compatible.
    """

    account_id: str
    reason: str
    banned_by: str
    """Who banned it: an operator id, "api" for the HTTP API, "system" for automation."""


@upcaster(AccountBanned, from_version=1)
def _who_banned_v1(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "banned_by": "unknown"}  # v1 did not record it


class AccountClosed(Event):
    account_id: str


# -- published by the consumers, as follow-ups (ctx.publish carries the causation id) --------


class PaymentMethodsFrozen(Event):
    """Payments froze a banned account's cards; the customer is told (notifications)."""

    account_id: str
    methods: int


class BanReminderDue(Event):
    """Notifications' own reminder, scheduled with a delay when an account is banned."""

    account_id: str
    banned_at: datetime


class OnboardingFollowUpDue(Event):
    """Onboarding's follow-up, scheduled with a delay when an account is opened."""

    account_id: str
    opened_at: datetime


AccountEvent = AccountOpened | AccountBanned | AccountClosed | PaymentMethodsFrozen
"""Everything on `account_events`: a consumer annotated with it receives every account event."""
