"""Run an App's consumers on an in-memory broker with a fake clock, for users' tests."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from tidings.app import App
from tidings.backends.memory import MemoryBackend
from tidings.events import Event
from tidings.exceptions import DecodeError
from tidings.publisher import Published, TopicRef
from tidings.records import OutgoingRecord, Record
from tidings.runtime import dead_letters as dl
from tidings.runtime.runner import Runner
from tidings.testing.clock import FakeClock
from tidings.wire import (
    ce_headers,
    decode_data,
    format_time,
    new_event_id,
    read_envelope,
    version_uri,
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter as a test sees it: which event, why it failed, after how many attempts."""

    event: Event | None
    """The event, decoded; None when it cannot be (unknown type, bad JSON, schema violation)."""
    value: bytes | None
    """The raw value, as published."""
    event_id: str
    event_type: str | None
    reason: str | None
    """Why: ``handler_error``, ``bad_json``, ``schema_violation``, ``unknown_type``, ..."""
    error_type: str | None
    """The exception's class name, e.g. ``ValueError``."""
    error_message: str | None
    attempts: int | None
    topic: str | None
    partition: int | None
    offset: int | None
    """Where the original event was."""
    record: Record
    """The dead-letter record itself, with every header."""

    @property
    def error(self) -> str:
        """``ErrorType: message``, as a log line would show it."""
        return f"{self.error_type}: {self.error_message}"

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        info = dl.read_dead_letter(record)
        try:
            envelope, data = read_envelope(record)
            event: Event | None = decode_data(record, envelope, data)
        except DecodeError:
            event = None
        return cls(
            event=event,
            value=record.value,
            event_id=info.event_id,
            event_type=info.event_type,
            reason=info.reason,
            error_type=info.error_type,
            error_message=info.error_message,
            attempts=info.attempts,
            topic=info.topic,
            partition=info.partition,
            offset=info.offset,
            record=record,
        )


class Harness:
    """Swap an App onto an in-memory broker and a FakeClock while the harness is open.

    `publish` then `drain()` runs every consumer until all published events are handled;
    retry backoffs are skipped through by advancing the fake clock. `advance(timedelta)`
    moves time forward so delayed events fall due, then drains.
    """

    def __init__(self, app: App, *, groups: list[str] | None = None) -> None:
        self.app = app
        self.clock = FakeClock()
        self.backend = MemoryBackend(url="memory://harness", clock=self.clock)
        self.groups = groups
        self._stack = contextlib.ExitStack()
        self.runner: Runner | None = None

    def __enter__(self) -> Harness:
        app = self.app
        with contextlib.ExitStack() as stack:
            stack.enter_context(app.use_backend(self.backend, clock=self.clock))
            if app.consumers:
                self.runner = stack.enter_context(app.running(self.groups))
                for worker in self.runner.workers:
                    worker.commit_interval = 0.005
                    worker.poll_timeout = 0.005
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def publish(
        self,
        topic: TopicRef,
        event: Event,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
    ) -> Published:
        return self.app.publish(topic, event, key=key, headers=headers, delay=delay, at=at)

    def publish_payload(
        self,
        topic: TopicRef,
        event: type[Event],
        payload: dict[str, Any],
        *,
        version: int,
        key: str | None = None,
    ) -> None:
        """Store `payload` as an older (or newer) deployment would have published it.

        The record carries `event`'s type and the ``ce_dataschema`` of `version`, so a test
        can check its upcasters: publish the v1 payload, drain, assert what the handler got.
        """
        name = topic if isinstance(topic, str) else topic.name
        headers = ce_headers(
            new_event_id().encode(),
            self.app.name.encode(),
            event.event_type.encode(),
            format_time(self.clock.time()).encode(),
            version_uri(event.event_type, version),
        )
        value = json.dumps(payload).encode()
        kb = None if key is None else key.encode()
        self.backend.produce([OutgoingRecord(name, kb, value, headers)])

    def _caught_up(self) -> bool:
        runner = self.runner
        if runner is None:
            return True
        if any(w.tracker.in_flight() for w in runner.workers):
            return False
        wanted = {w.group for w in runner.workers}
        for info in self.backend.groups():
            if info.group in wanted and any(p.lag for p in info.partitions):
                return False
        return True

    def drain(self, *, timeout: float = 10.0) -> None:
        """Run consumers until every published event is handled (skipping retry waits)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self._caught_up():
                time.sleep(0.01)
                if self._caught_up():
                    return
            now = time.monotonic()
            quiet_since = quiet_since or now
            due = self.clock.next_timer()
            if due is not None and now - quiet_since > 0.02:
                self.clock.advance(max(0.0, due - self.clock.time()))
                quiet_since = None
            time.sleep(0.002)
        raise TimeoutError(
            f"Consumers did not catch up within {timeout} s: a handler may be blocked, or a "
            "partition stopped (dead letters disabled); see the log."
        )

    def advance(self, by: timedelta | float) -> None:
        """Move the fake clock forward (delayed events fall due), then drain."""
        self.clock.advance(by)
        self.backend.release_due()
        self.drain()

    def records(self, topic: str) -> list[Record]:
        """Return every record stored in `topic`."""
        return list(self._read(topic))

    def dead_letters(self, topic: str, group: str) -> list[DeadLetter]:
        """Return the dead letters `group` wrote for events of `topic`, oldest first."""
        return [
            DeadLetter.from_record(r)
            for r in self._read(dl.dlq_topic(topic, group))
            if not dl.is_replay_marker(r)
        ]

    def _read(self, topic: str) -> Iterator[Record]:
        handle = self.backend.open_consumer(None, [topic], start="earliest", listener=None)
        try:
            while batch := handle.fetch(10_000, 0):
                yield from batch
        finally:
            handle.close()
