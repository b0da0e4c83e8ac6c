"""The Event base class and the registry from wire type to class."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tidings.exceptions import ConfigurationError

_REGISTRY: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Base class of every domain event: a pydantic v2 model.

    The wire type (CloudEvents `ce_type`) defaults to the class name; set
    ``event_type = "accounts.banned"`` in the class body to choose another. Two classes
    may not claim the same wire type.

    ``class AccountBanned(Event, version=2)`` declares the schema version (default 1);
    bump it for an incompatible change and register an `upcaster` from the old version.
    The version is readable as ``AccountBanned.event_version``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str] = ""
    event_version: ClassVar[int] = 1

    def __init_subclass__(cls, version: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ConfigurationError(
                    f"{_qualname(cls)}: version={version!r}; an event version is an "
                    "integer >= 1, e.g. `class AccountBanned(Event, version=2)`."
                )
            cls.event_version = version
        elif "event_version" not in cls.__dict__:
            cls.event_version = 1  # a subclass is its own type: it does not inherit a version
        if "event_type" not in cls.__dict__ or not cls.__dict__["event_type"]:
            cls.event_type = cls.__name__
        existing = _REGISTRY.get(cls.event_type)
        if existing is not None and _qualname(existing) != _qualname(cls):
            raise ConfigurationError(
                f"Event type {cls.event_type!r} is claimed by both {_qualname(existing)} and "
                f'{_qualname(cls)}. Set a distinct `event_type = "..."` on one of them.'
            )
        _REGISTRY[cls.event_type] = cls


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def event_class(event_type: str) -> type[Event] | None:
    """Return the Event class registered for a wire type, or None."""
    return _REGISTRY.get(event_type)


def registered_types() -> dict[str, type[Event]]:
    """Return a snapshot of the wire-type registry."""
    return dict(_REGISTRY)
