"""The entry point: ``app`` is what ``tidings run examples.accounts.app:app`` runs.

Run one group per process, as separate services would be deployed (from the repo root)::

    tidings run examples.accounts.app:app --group payments
    tidings run examples.accounts.app:app --group notifications

Every process uses the same broker: ``--broker URL``, else $TIDINGS_BROKER, else the
embedded store in ./.tidings; the same database: $ACCOUNTS_DATABASE_URL, else ./accounts.db
(SQLite). Timings come from the environment (see `Settings.from_env`).
"""

from __future__ import annotations

import os

from .events import account_events, account_reminders, onboarding_follow_ups
from .system import Settings, build_system

# Every process (the HTTP service and each `tidings run`) shares one database: the
# consumers' processes relay what the service's transactions put in the outbox.
system = build_system(
    settings=Settings.from_env(),
    database=os.environ.get("ACCOUNTS_DATABASE_URL") or "sqlite:///accounts.db",
)
app = system.app

__all__ = ["account_events", "account_reminders", "app", "onboarding_follow_ups", "system"]
