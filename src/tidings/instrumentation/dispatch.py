"""Deliver catalogue events to listeners; a raising listener never stops consumption."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tidings.exceptions import ConfigurationError
from tidings.instrumentation.catalogue import CATALOGUE, RuntimeEvent

log = logging.getLogger("tidings.instrumentation")

E = TypeVar("E", bound=RuntimeEvent)
Listener = Callable[[Any], object]
LOG_EVERY = 60.0
"""A failing listener is logged at most once per this many seconds."""


class Listeners:
    """The listeners of one app, by event type.

    Emitting sites check `active` (one attribute read) before building an event, so an
    app nobody listens to pays nothing for the catalogue.
    """

    def __init__(self) -> None:
        self.active = False
        self._by_type: dict[type[RuntimeEvent], tuple[Listener, ...]] = {}
        self._lock = threading.Lock()
        self._logged: dict[int, float] = {}

    def on(self, kind: type[E], listener: Callable[[E], object]) -> Callable[[E], object]:
        """Call `listener(event)` for each event of `kind` (a catalogue class, or
        RuntimeEvent for all of them); returns `listener`.

        Raises:
            ConfigurationError: `kind` is not a catalogue class or `listener` not callable.
        """
        kinds = [k for k in CATALOGUE if isinstance(kind, type) and issubclass(k, kind)]
        if not kinds:
            raise ConfigurationError(
                f"app.on() takes a class of the event catalogue (tidings.EventHandled, ...; "
                f"tidings.RuntimeEvent for all), got {kind!r}."
            )
        if not callable(listener):
            raise ConfigurationError(f"app.on({kind.__name__}, ...) needs a callable.")
        with self._lock:
            for k in kinds:
                self._by_type[k] = (*self._by_type.get(k, ()), listener)
            self.active = True
        return listener

    def wants(self, kind: type[RuntimeEvent]) -> bool:
        return kind in self._by_type

    def emit(self, event: RuntimeEvent) -> None:
        """Call every listener of `event`'s type; errors are logged (once a minute each)."""
        for listener in self._by_type.get(type(event), ()):
            try:
                listener(event)
            except Exception as exc:
                self._failed(listener, event, exc)

    def _failed(self, listener: Listener, event: RuntimeEvent, exc: Exception) -> None:
        now = time.monotonic()
        key = id(listener)
        last = self._logged.get(key)
        if last is not None and now - last < LOG_EVERY:
            return
        self._logged[key] = now
        log.warning(
            "listener %s raised %s on %s: %s (logged at most once a minute; consumption goes on)",
            getattr(listener, "__qualname__", repr(listener)),
            type(exc).__name__,
            event.name,
            exc,
        )


NO_LISTENERS = Listeners()
"""Shared by runtime objects built without an app: never active unless someone registers."""
