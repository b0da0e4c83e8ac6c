"""Simulated customers for ``tidings demo``: open, ban and close accounts at a steady rate."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from .notifications import BOUNCING_DOMAIN
from .service import AccountsService

NAMES = ("Ada", "Alan", "Barbara", "Edsger", "Grace", "Ken", "Leslie", "Margaret", "Tony")
REASONS = ("fraud", "chargebacks", "terms of service", "sanctions screening")


class Traffic:
    """Drives an AccountsService like a crowd of customers (deterministic for a seed).

    Most actions open accounts; some ban an open account; some close an open or banned
    one. A small share of new accounts has an address that bounces, so their emails end
    up in the notifications dead-letter topic.
    """

    def __init__(
        self, service: AccountsService, *, seed: int | None = None, bounce_rate: float = 0.005
    ) -> None:
        self.service = service
        self.bounce_rate = bounce_rate
        self.actions: Counter[str] = Counter()
        self.event_ids: list[str] = []
        """The id of every event the service published for this traffic."""
        self._random = random.Random(seed)
        self._open: list[str] = []
        self._banned: list[str] = []

    def step(self) -> None:
        """Take one action (one published event)."""
        roll = self._random.random()
        if len(self._open) < 10 or roll < 0.55:
            self._open_account()
        elif roll < 0.70:
            account_id = self._take(self._open)
            reason = self._random.choice(REASONS)
            self._record("ban", self.service.ban(account_id, reason).event_id)
            self._banned.append(account_id)
        else:
            pool = self._banned if self._banned and self._random.random() < 0.4 else self._open
            self._record("close", self.service.close(self._take(pool)).event_id)

    def run(self, *, rate: float, duration: float, stop: threading.Event | None = None) -> None:
        """Take `rate` actions per second for `duration` seconds (or until `stop` is set)."""
        start = time.monotonic()
        total = int(rate * duration)
        for i in range(total):
            if stop is not None and stop.is_set():
                return
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            self.step()

    def _open_account(self) -> None:
        name = self._random.choice(NAMES)
        n = self.actions["open"]
        domain = BOUNCING_DOMAIN if self._random.random() < self.bounce_rate else "example.com"
        change = self.service.open(name, f"{name.lower()}.{n}@{domain}")
        self._record("open", change.event_id)
        self._open.append(change.account.id)

    def _take(self, pool: list[str]) -> str:
        # Swap with the last and pop: O(1) removal of a random element.
        i = self._random.randrange(len(pool))
        pool[i], pool[-1] = pool[-1], pool[i]
        return pool.pop()

    def _record(self, action: str, event_id: str) -> None:
        self.actions[action] += 1
        self.event_ids.append(event_id)
