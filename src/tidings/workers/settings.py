"""What `tidings run --workers` is told: worker count, limits, and how to start a worker."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from tidings.exceptions import ConfigurationError

HEARTBEAT_TIMEOUT = 15.0
"""Seconds a worker's poll loops may go without turning before the supervisor kills it.

A poll loop turns every 0.05-0.25 s; it legitimately stalls while a revocation waits for
running handlers (up to 5 s) or a Kafka call waits for a slow broker (up to the 10 s
connect_timeout), so 15 s means stuck, never merely busy."""

STOP_MARGIN = 10.0
"""Seconds past the grace period a stopping worker gets to commit and leave its groups
(Kafka waits up to 5 s for the revocation) before the supervisor kills it."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_workers(text: str) -> int:
    """Return the worker count `text` asks for: a whole number >= 1, or "auto" (one per CPU).

    Raises:
        ConfigurationError: anything else.
    """
    value = text.strip().lower()
    if value == "auto":
        return os.cpu_count() or 1
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigurationError(
        f"--workers {text!r}: give a whole number of worker processes >= 1 (e.g. --workers 2) "
        "or 'auto' for one per CPU."
    )


def parse_size(text: str) -> int:
    """Parse a memory size: ``512MB``, ``1.5GB``, ``800MiB``, ``300M`` (MB = 10^6 bytes).

    Raises:
        ConfigurationError: not a positive size with a known unit.
    """
    found = _SIZE.fullmatch(text.strip().lower())
    if found is None or found.group(2) not in _UNITS or float(found.group(1)) <= 0:
        raise ConfigurationError(
            f"--max-memory {text!r} is not a memory size; write a number and a unit: B, KB, "
            "MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. --max-memory 512MB."
        )
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def format_size(nbytes: int) -> str:
    """Return `nbytes` in MB with one decimal, as logs show sizes."""
    return f"{nbytes / 1000**2:.1f} MB"


def instance_prefix() -> str:
    """Return this host's name as member ids may spell it (letters, digits, '.', '_', '-').

    Two supervisors of one app on two hosts must not share a static member id: Kafka would
    fence one with the other, over and over.
    """
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "host"
    return host[:60]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerCommand:
    """What every worker process runs: the app and the `tidings run` options it honours."""

    app_spec: str
    groups: tuple[str, ...] = ()
    broker: str | None = None
    grace: float | None = None
    log_level: str = "info"
    log_format: str = "auto"
    http: tuple[str, int] | None = None
    """Worker i serves /metrics, /livez and /readyz on (host, port + i); port 0: any port."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSettings:
    """How the supervisor keeps `workers` processes alive."""

    workers: int
    grace: float
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    max_memory: int | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 30.0
    """A worker that ran this long before it died restarts after `backoff_initial` again."""
    stop_margin: float = STOP_MARGIN
    memory_interval: float = 1.0
    instance: str = field(default_factory=instance_prefix)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigurationError(f"workers must be >= 1 (got {self.workers}).")
        if self.heartbeat_timeout <= 0:
            raise ConfigurationError(
                f"--heartbeat-timeout must be > 0 seconds (got {self.heartbeat_timeout})."
            )

    def backoff(self, failures: int) -> float:
        """Seconds before restart number `failures` of a worker that keeps dying young."""
        if failures <= 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1)))
