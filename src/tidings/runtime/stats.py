"""Counters a consumer keeps; `statistics()` snapshots feed the CLI, demo and dashboard."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class ConsumerStats:
    """Running totals for one consumer (a handler in a group)."""

    received: int = 0
    handled: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0
    stopped_partitions: int = 0
    batches: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def add(self, other: ConsumerStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
