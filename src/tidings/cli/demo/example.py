"""Find, import and configure the example the demo runs: `examples/accounts`.

The demo only relies on the few names typed below, so the example stays plain user code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import tidings
from tidings.app import App
from tidings.publisher import Published


class Ledger(Protocol):
    """A service's record of the events it handled."""

    def has_handled(self, event_id: str, event_type: str, account_id: str) -> bool: ...


class Notifications(Ledger, Protocol):
    reminders_scheduled: dict[str, Published]


class Onboarding(Ledger, Protocol):
    follow_ups_scheduled: dict[str, Published]


class System(Protocol):
    """What the demo uses of examples.accounts.system.AccountSystem."""

    app: App
    service: Any
    payments: Ledger
    notifications: Notifications
    analytics: Ledger
    onboarding: Onboarding

    def close(self) -> None: ...


class Traffic(Protocol):
    """examples.accounts.traffic.Traffic: simulated customers."""

    event_ids: list[str]

    def run(self, *, rate: float, duration: float, stop: threading.Event | None = None) -> None: ...


class Settings(Protocol):
    settlement: timedelta
    reminder_delay: timedelta
    follow_up_delay: timedelta


class DemoUnavailable(Exception):
    """The example package is not next to this tidings installation or in the cwd."""


EXAMPLE_NEEDS = ("sqlalchemy",)
"""Modules the example imports beyond tidings' own dependencies (the outbox extra)."""


def load_example() -> ModuleType:
    """Import `examples.accounts.system` from the repository, or from the working directory.

    Raises:
        DemoUnavailable: the example is not there, or the outbox extra it uses is missing.
    """
    missing = [m for m in EXAMPLE_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise DemoUnavailable(
            f"The demo's example publishes through the outbox, which needs "
            f"{', '.join(missing)}: install tidings with that extra, "
            "`pip install -e '.[outbox]'` in a checkout (`make demo` does) or "
            "`pip install 'tidings[outbox]'`."
        )
    candidates = [Path(tidings.__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"]
    for examples in candidates:
        if (examples / "accounts" / "system.py").is_file():
            root = str(examples.parent)
            if root not in sys.path:
                sys.path.insert(0, root)
            module = importlib.import_module("examples.accounts.system")
            if not Path(module.__file__ or "").resolve().is_relative_to(examples.resolve()):
                raise DemoUnavailable(
                    f"`examples.accounts` was imported from {module.__file__}, not from "
                    f"{examples}; another package named `examples` shadows it."
                )
            return module
    raise DemoUnavailable(
        "The demo runs the example in examples/accounts, which was not found next to this "
        f"tidings installation ({candidates[0]}) or in the working directory. Run "
        "`tidings demo` from a checkout of the tidings repository."
    )


def settings_for(
    system_module: ModuleType, duration: float, seed: int, *, email_failure_rate: float
) -> Settings:
    """Scale the example's timings to the demo's length, so a short demo stays short."""

    def scaled(share: float, low: float, high: float) -> timedelta:
        return timedelta(seconds=min(high, max(low, duration * share)))

    settings: Settings = system_module.Settings(
        settlement=scaled(0.4, 0.5, 12.0),
        reminder_delay=scaled(0.25, 1.0, 8.0),
        follow_up_delay=scaled(0.15, 1.0, 5.0),
        email_failure_rate=email_failure_rate,
        seed=seed,
    )
    return settings


def longest_wait(settings: Settings) -> float:
    waits = (settings.settlement, settings.reminder_delay, settings.follow_up_delay)
    return max(w.total_seconds() for w in waits)
