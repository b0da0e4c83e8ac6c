"""The workload every contender runs: ~1 KB JSON account events keyed over 10,000 keys.

A `Job` is one scenario for one contender, sent as JSON to a worker subprocess. The event
has ten fields; ``note`` pads the JSON value to `Job.size` bytes. Peers validate into
`Account` (a plain pydantic model configured like tidings' `Event`); tidings into
`AccountEvent`. Events are built before a timer starts; encoding them is part of the
timed work for every contender (frameworks always serialize).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from tidings import Event

FIELDS = (
    "account_id",
    "seq",
    "sent_ns",
    "plan",
    "country",
    "email",
    "balance_cents",
    "status",
    "tags",
    "note",
)


class Account(BaseModel):
    """The peers' model: the same fields and config as `AccountEvent`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    account_id: str
    seq: int
    sent_ns: int
    plan: str
    country: str
    email: str
    balance_cents: int
    status: str
    tags: list[str]
    note: str


class AccountEvent(Event, Account):
    """tidings' model of the same event: `Account`'s fields on a tidings `Event`."""

    event_type = "bench.AccountUpdated"


@dataclass
class Job:
    """One scenario for one contender; every field is JSON-serializable."""

    contender: str
    scenario: str
    bootstrap: str = ""
    topic: str = ""
    group: str = ""
    data_dir: str = ""
    events: int = 0
    warmup: int = 0
    size: int = 1000
    keys: int = 10_000
    partitions: int = 6
    rate: int = 1000
    concurrency: int = 1
    sleep: float = 0.0
    delay: float = 0.0
    timeout: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.warmup + self.events

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


def key(i: int, keys: int) -> str:
    return f"acct-{i % keys}"


def _filler(size: int) -> int:
    """Length of ``note`` that makes an event's JSON about `size` bytes."""
    probe = event_dict(99_999, 10_000, 0)
    return max(0, size - len(json.dumps(probe, separators=(",", ":"))))


def event_dict(i: int, keys: int, pad: int | str) -> dict[str, Any]:
    note = pad if isinstance(pad, str) else "x" * pad
    return {
        "account_id": key(i, keys),
        "seq": i,
        "sent_ns": time.time_ns(),
        "plan": "pro",
        "country": "NL",
        "email": f"user{i}@example.com",
        "balance_cents": i * 7,
        "status": "active",
        "tags": ["a", "b"],
        "note": note,
    }


def dicts(job: Job, count: int | None = None, start: int = 0) -> list[dict[str, Any]]:
    """Build `count` (default `job.total`) event dicts, before any timer starts."""
    pad = "x" * _filler(job.size)  # one shared string: less memory, faster to build
    n = job.total if count is None else count
    return [event_dict(i, job.keys, pad) for i in range(start, start + n)]


def encode(doc: dict[str, Any]) -> bytes:
    """The peers' JSON encoding (compact, like pydantic's)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def tidings_events(job: Job, count: int | None = None) -> list[tuple[str, AccountEvent]]:
    return [(d["account_id"], AccountEvent(**d)) for d in dicts(job, count)]


def account_models(job: Job, count: int | None = None) -> list[Account]:
    return [Account(**d) for d in dicts(job, count)]


def one_event(i: int, job: Job, pad: int) -> dict[str, Any]:
    """A fresh event stamped now (latency runs build events as they send them)."""
    return event_dict(i, job.keys, pad)


def filler(job: Job) -> int:
    return _filler(job.size)
