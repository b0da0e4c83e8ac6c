"""Upcasters: functions that turn an event's old payload into its current version.

``@upcaster(AccountBanned, from_version=1)`` registers a function from the JSON payload (a
dict) of version 1 to the payload of version 2. A consumer whose class is at version 3
that reads a version 1 event runs the 1→2 and then the 2→3 upcaster, then validates the
result into the class. Upcasters are pure functions of the payload: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tidings.events import Event
from tidings.exceptions import ConfigurationError

Payload = dict[str, Any]
UpcasterFn = Callable[[Payload], Payload]
F = TypeVar("F", bound=UpcasterFn)

_UPCASTERS: dict[tuple[str, int], UpcasterFn] = {}


class MissingUpcaster(LookupError):
    """No upcaster is registered for one step of the chain (internal; wire.py reports it)."""

    def __init__(self, event_type: str, from_version: int) -> None:
        super().__init__(event_type, from_version)
        self.event_type = event_type
        self.from_version = from_version


def upcaster(event: type[Event], *, from_version: int) -> Callable[[F], F]:
    """Register the decorated function as the upcaster of `event` from `from_version`.

    The function takes the payload of version `from_version` (a dict, as decoded from
    JSON) and returns the payload of version ``from_version + 1``. Chains run in order.

    Raises:
        ConfigurationError: `from_version` is not below the class's version, or another
            function already upcasts that step.
    """
    if not (isinstance(event, type) and issubclass(event, Event)):
        raise ConfigurationError(
            f"@upcaster takes an Event subclass first, got {event!r}: "
            "`@upcaster(AccountBanned, from_version=1)`."
        )
    current = event.event_version
    if isinstance(from_version, bool) or not isinstance(from_version, int):
        raise ConfigurationError(f"@upcaster(from_version={from_version!r}) must be an int.")
    if not 1 <= from_version < current:
        raise ConfigurationError(
            f"@upcaster({event.__name__}, from_version={from_version}): {event.__name__} is "
            f"at version {current}, so from_version must be between 1 and {current - 1}. "
            f"Bump the class first: `class {event.__name__}(Event, version={current + 1})`."
        )

    def register(fn: F) -> F:
        step = (event.event_type, from_version)
        existing = _UPCASTERS.get(step)
        if existing is not None and _name(existing) != _name(fn):
            raise ConfigurationError(
                f"{event.__name__} v{from_version}→v{from_version + 1} already has the "
                f"upcaster {_name(existing)}; {_name(fn)} cannot claim it too. Keep one."
            )
        _UPCASTERS[step] = fn
        return fn

    return register


def upcast(cls: type[Event], payload: Payload, version: int) -> Payload:
    """Run the upcasters of `cls` from `version` up to the class's version, in order.

    Raises:
        MissingUpcaster: a step of the chain has no upcaster.
        Exception: whatever an upcaster raises.
    """
    for step in range(version, cls.event_version):
        fn = _UPCASTERS.get((cls.event_type, step))
        if fn is None:
            raise MissingUpcaster(cls.event_type, step)
        payload = fn(dict(payload))
        if not isinstance(payload, dict):
            raise TypeError(
                f"upcaster {_name(fn)} returned {type(payload).__name__}, not a dict payload"
            )
    return payload


def missing_steps(cls: type[Event]) -> list[int]:
    """The versions of `cls` below its current one that have no upcaster."""
    return [v for v in range(1, cls.event_version) if (cls.event_type, v) not in _UPCASTERS]


def _name(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
