"""Settings chosen when a consumer is registered: retry policy and batching."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from tidings.exceptions import ConfigurationError


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ConfigurationError(f"{name} must be >= 0 (got {seconds}).")
    return seconds


@dataclass(frozen=True, kw_only=True)
class Retry:
    """How a failing handler is retried before its event goes to the dead letters.

    Attempt n (n >= 2) waits ``min(backoff * 2**(n-2), max_backoff)`` seconds, with full
    jitter between half and all of it when `jitter` is on. The wait holds back only later
    events with the same key; other keys and partitions keep flowing. Exceptions that are
    instances of `give_up_on` are dead-lettered at once.

    With ``keep_order=False`` a failing event is moved to the group's retry topic
    ``<topic>.<group>.retry`` (delivered again after its backoff) and its offset commits at
    once: later events of the same key no longer wait for it, so per-key order is traded
    for throughput.
    """

    attempts: int = 3
    backoff: float | timedelta = 0.2
    max_backoff: float | timedelta = 30.0
    jitter: bool = True
    give_up_on: tuple[type[BaseException], ...] = field(default_factory=tuple)
    keep_order: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(
                f"Retry.attempts must be >= 1 (got {self.attempts}); 1 means no retry."
            )
        _seconds(self.backoff, "Retry.backoff")
        _seconds(self.max_backoff, "Retry.max_backoff")

    def delay_before(self, attempt: int) -> float:
        """Return the wait in seconds before `attempt` (2 for the first retry)."""
        base = _seconds(self.backoff, "Retry.backoff")
        cap = _seconds(self.max_backoff, "Retry.max_backoff")
        delay = min(base * float(2 ** max(0, attempt - 2)), cap)
        if self.jitter:
            delay = random.uniform(delay / 2, delay)
        return delay

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Return whether an exception raised on `attempt` deserves another attempt."""
        return attempt < self.attempts and not isinstance(exc, self.give_up_on)


NO_RETRY = Retry(attempts=1)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Hand the handler a list of up to `max_size` events, waiting at most `max_wait`."""

    max_size: int = 100
    max_wait: float | timedelta = 1.0

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ConfigurationError(f"Batch.max_size must be >= 1 (got {self.max_size}).")
        _seconds(self.max_wait, "Batch.max_wait")

    @property
    def wait_seconds(self) -> float:
        return _seconds(self.max_wait, "Batch.max_wait")
