"""The entry point: ``app`` is what ``tidings run examples.accounts.app:app`` runs.

Run one group per process, as separate services would be deployed (from the repo root)::

    tidings run examples.accounts.app:app --group payments
    tidings run examples.accounts.app:app --group notifications

Every process uses the same broker: ``--broker URL``, else $TIDINGS_BROKER, else the
embedded store in ./.tidings. Timings come from the environment (see `Settings.from_env`).
"""

from __future__ import annotations

from .events import account_events, account_reminders, onboarding_follow_ups
from .system import Settings, build_system

system = build_system(settings=Settings.from_env())
app = system.app

__all__ = ["account_events", "account_reminders", "app", "onboarding_follow_ups", "system"]
