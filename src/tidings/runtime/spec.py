"""A registered consumer: the handler and the policies chosen for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.records import Start
from tidings.runtime.failures import FailureStrategy
from tidings.runtime.handlers import HandlerInfo
from tidings.runtime.policies import Batch, Retry


@dataclass(frozen=True, kw_only=True)
class ConsumerSpec:
    """One `@app.consumer` registration: a handler on a topic, in a group."""

    handler: HandlerInfo
    topic: str
    group: str
    retry: Retry
    dead_letter: bool
    concurrency: int | None
    """None: one event at a time per partition, partitions independent; N: N at once, by key."""
    batch: Batch | None
    timeout: float | None
    start: Start
    exactly_once: bool = False
    """Outputs, dead letters and retries are written with the offset commit, atomically."""
    failures: FailureStrategy = field(init=False, repr=False, compare=False)
    """Chosen here, at registration, from `retry` and `dead_letter` (runtime/failures.py)."""

    def __post_init__(self) -> None:
        strategy = FailureStrategy(self.retry, dead_letter=self.dead_letter)
        object.__setattr__(self, "failures", strategy)

    @property
    def name(self) -> str:
        return f"{self.group}:{self.handler.name}"
