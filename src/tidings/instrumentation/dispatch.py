"""Deliver catalogue events to listeners; a raising listener never stops consumption."""

from __future__ import annotations

import bisect
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
        self.buckets: tuple[float, ...] | None = None
        self.tallies: list[Tally] = []

    def keep_tallies(self, buckets: tuple[float, ...]) -> None:
        """Have each consumer keep a `Tally` of its handled events (duration `buckets`).

        For aggregating listeners such as the metrics: summing where the event happens
        costs a fraction of building an EventHandled per event. Read `tallies` on demand.
        """
        with self._lock:
            self.buckets = tuple(buckets)
            self.active = True

    def new_tally(self, group: str) -> Tally | None:
        """A Tally for one consumer of `group` (None unless `keep_tallies` was called)."""
        buckets = self.buckets
        if buckets is None:
            return None
        tally = Tally(group, buckets)
        with self._lock:
            self.tallies = [*self.tallies, tally]
        return tally

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


class Tally:
    """One consumer's handled events, summed where they happen (see `keep_tallies`).

    `series[(topic, outcome)]` is a list: a count per duration bucket (the last bucket is
    +Inf), then the sum of the durations. Written on the event loop thread only.
    """

    __slots__ = ("buckets", "group", "series")

    def __init__(self, group: str, buckets: tuple[float, ...]) -> None:
        self.group = group
        self.buckets = buckets
        self.series: dict[tuple[str, str], list[float]] = {}

    def add(self, topic: str, outcome: str, duration: float) -> None:
        series = self.series.get((topic, outcome))
        if series is None:
            series = self.start(topic, outcome)
        series[bisect.bisect_left(self.buckets, duration)] += 1
        series[-1] += duration

    def start(self, topic: str, outcome: str) -> list[float]:
        """Create and return the (empty) series of `topic` and `outcome`."""
        series: list[float] = [0] * (len(self.buckets) + 2)
        self.series[(topic, outcome)] = series
        return series


NO_LISTENERS = Listeners()
"""Shared by runtime objects built without an app: never active unless someone registers."""
