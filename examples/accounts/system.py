"""Assemble the account system: one App, the accounts service and the four consumer groups.

`build_system` is a factory so tests and `tidings demo` can build the system on any broker
with their own timings; `app.py` builds the default one for ``tidings run``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, create_engine

from tidings import App, Batch
from tidings.outbox import Inbox, Outbox

from . import analytics, notifications, onboarding, payments
from .analytics import Analytics
from .events import account_events, account_reminders, onboarding_follow_ups
from .notifications import EmailGateway, Notifications
from .onboarding import Onboarding
from .payments import Payments
from .service import AccountsService


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Timings and failure injection. Production would use days where these use seconds."""

    settlement: timedelta = timedelta(seconds=12)
    """How long payments' settlement with the bank takes (a long-running handler)."""
    reminder_delay: timedelta = timedelta(seconds=30)
    """How long after a ban notifications reminds the customer (30 days in real life)."""
    follow_up_delay: timedelta = timedelta(seconds=20)
    """How long after opening onboarding follows up (3 days in real life)."""
    email_failure_rate: float = 0.0
    """Share of emails the gateway fails transiently (they are retried)."""
    analytics_batch: Batch = field(default_factory=lambda: Batch(max_size=500, max_wait=0.5))
    seed: int | None = None

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment; variables not set keep the defaults.

        The variables: ACCOUNTS_SETTLEMENT_SECONDS, ACCOUNTS_REMINDER_SECONDS,
        ACCOUNTS_FOLLOW_UP_SECONDS and ACCOUNTS_EMAIL_FAILURE_RATE.
        """
        default = cls()

        def seconds(name: str, fallback: timedelta) -> timedelta:
            value = os.environ.get(name)
            return timedelta(seconds=float(value)) if value else fallback

        return cls(
            settlement=seconds("ACCOUNTS_SETTLEMENT_SECONDS", default.settlement),
            reminder_delay=seconds("ACCOUNTS_REMINDER_SECONDS", default.reminder_delay),
            follow_up_delay=seconds("ACCOUNTS_FOLLOW_UP_SECONDS", default.follow_up_delay),
            email_failure_rate=float(os.environ.get("ACCOUNTS_EMAIL_FAILURE_RATE") or 0.0),
        )


@dataclass(frozen=True)
class AccountSystem:
    """The App and each service's state (the state is what tests and the demo inspect)."""

    app: App
    engine: Engine
    outbox: Outbox
    inbox: Inbox
    service: AccountsService
    payments: Payments
    notifications: Notifications
    analytics: Analytics
    onboarding: Onboarding

    def close(self) -> None:
        """Release the broker connection and the services' local stores."""
        self.app.close()
        self.service.close_store()
        self.analytics.close()
        self.engine.dispose()


def build_system(
    broker: str | None = None, settings: Settings | None = None, database: str | None = None
) -> AccountSystem:
    """Build the whole system on `broker` (else $TIDINGS_BROKER, else ./.tidings).

    `database` is the SQLAlchemy URL of the services' database, else
    $ACCOUNTS_DATABASE_URL (e.g. postgresql+psycopg://user@host/accounts), else a new
    SQLite file in a temporary directory. Its tables (accounts, the outbox, the inbox,
    settlements) are created if missing; nothing touches the broker until the first
    publish or `app.run()`.
    """
    settings = settings or Settings()
    app = App("accounts", broker=broker)
    for topic in (account_events, account_reminders, onboarding_follow_ups):
        app.topic(topic.name, partitions=topic.partitions)
    url = database or os.environ.get("ACCOUNTS_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='accounts-')}/accounts.db"
    engine = create_engine(url)
    outbox = app.outbox(engine)  # accounts publishes through it; `tidings run` relays it
    inbox = app.inbox(engine)  # payments claims each ban in it, once
    outbox.create_tables()
    inbox.create_tables()
    gateway = EmailGateway(failure_rate=settings.email_failure_rate, seed=settings.seed)
    return AccountSystem(
        app=app,
        engine=engine,
        outbox=outbox,
        inbox=inbox,
        service=AccountsService(app, engine=engine, outbox=outbox),
        payments=payments.register(app, engine=engine, inbox=inbox, settlement=settings.settlement),
        notifications=notifications.register(
            app, reminder_delay=settings.reminder_delay, gateway=gateway
        ),
        analytics=analytics.register(app, batch=settings.analytics_batch),
        onboarding=onboarding.register(app, follow_up_delay=settings.follow_up_delay),
    )
