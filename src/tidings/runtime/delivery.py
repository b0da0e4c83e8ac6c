"""A fetched record on its way through a route: decode it into its Event, build its Context.

Decoding never raises anything but `DecodeError`: whatever goes wrong reading a record
(unreadable headers, a timestamp no date can hold, bad JSON, a validator raising any
exception) dead-letters that record with a reason code, and its partition flows on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidings.context import Context, context_headers
from tidings.events import Event, event_class
from tidings.exceptions import DecodeError
from tidings.records import OutgoingRecord, Record, TopicPartition
from tidings.runtime.commit_tracker import Run
from tidings.runtime.dead_letters import original
from tidings.wire import Envelope, decode_data, read_envelope, validate

MIN_TIME = -62135596800.0
"""0001-01-01T00:00:00Z in epoch seconds: the earliest record timestamp a date can hold."""
MAX_TIME = 253402300800.0
"""10000-01-01T00:00:00Z: record timestamps at or past it are dead-lettered (bad_timestamp)."""


@dataclass(slots=True)
class Delivery:
    """One fetched record on its way through a route: record number `index` of `run`.

    `etype` is None when the fast path must not take it (no ce_type header, or a record
    that `decode` will refuse).
    """

    record: Record
    run: Run
    index: int
    etype: bytes | None
    ctype: bytes | None
    attempt: int = 1
    schema: bytes | None = None
    """Its ce_dataschema header: absent for version 1."""
    event: Event | None = None
    env: Envelope | None = None
    dlq_failures: int = 0
    """Failed attempts to write its dead letter."""
    dlq_error: BaseException | None = None
    """Why its dead letter is written without the value (None: with it)."""
    outputs: list[OutgoingRecord] | None = None
    """With exactly_once: the follow-ups of the current attempt, staged if it succeeds."""

    @property
    def tp(self) -> TopicPartition:
        return self.run.part.tp


def valid_time(ts: object) -> bool:
    """Return whether `ts` is a record timestamp a date can hold (years 1 to 9999)."""
    try:
        return MIN_TIME <= ts < MAX_TIME  # type: ignore[operator]
    except TypeError:
        return False


def decode(d: Delivery, single: type[Event] | None, types: frozenset[str] | None) -> Event | None:
    """Validate the record into its Event; None if it is not for this handler.

    `single` is the handler's one Event class (None for a union or `Event`), `types` the
    wire types it takes (None for all). The common case (JSON content, a ce_type header)
    reads nothing but the value; the full envelope is read only for other content types,
    or later for a Context.

    Raises:
        DecodeError: for anything that keeps the record from becoming an Event, with a
            reason code (bad_headers, bad_timestamp, bad_json, schema_violation, ...).
    """
    rec = d.record
    if not valid_time(rec.timestamp):
        raise DecodeError(
            f"{rec.topic}[{rec.partition}]@{rec.offset}: timestamp {rec.timestamp!r} is not a "
            "date between the years 1 and 9999 (seconds since the epoch); the producer wrote "
            "a broken timestamp.",
            reason="bad_timestamp",
        )
    try:
        return _decode(d, single, types)
    except DecodeError:
        raise
    except Exception as exc:  # a broken record must not take the consumer down with it
        raise DecodeError(
            f"{rec.topic}[{rec.partition}]@{rec.offset}: could not be decoded: "
            f"{type(exc).__name__}: {exc}",
            reason="decode_error",
        ) from exc


def _decode(d: Delivery, single: type[Event] | None, types: frozenset[str] | None) -> Event | None:
    rec = d.record
    if d.etype is None or (d.ctype is not None and d.ctype != b"application/json"):
        d.env, data = read_envelope(rec)
        if types is not None and d.env.event_type not in types:
            return None  # structured-mode events are only typed after reading them
        if single is not None:
            return validate(rec, single, data, d.env.dataschema)
        return decode_data(rec, d.env, data)
    if single is not None:
        return validate(rec, single, rec.value, d.schema)
    cls = event_class(d.etype.decode("utf-8", "replace"))
    if cls is None:
        d.env, data = read_envelope(rec)
        return decode_data(rec, d.env, data)  # raises UnknownEventType
    return validate(rec, cls, rec.value, d.schema)


def context(d: Delivery, topic: str, group: str, publisher: Any, attempt: int | None) -> Context:
    """Build the Context of `d` for a handler consuming `topic` in `group`."""
    rec, env = d.record, d.env
    if env is None:
        env = d.env = read_envelope(rec)[0]
    if rec.topic != topic:
        rec = original(rec)
    return Context(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=rec.key.decode("utf-8", "replace") if rec.key is not None else None,
        headers=context_headers(rec.headers),
        event_id=env.event_id,
        event_type=env.event_type,
        timestamp=env.time if env.time is not None else rec.timestamp,
        attempt=attempt or d.attempt,
        group=group,
        _publisher=publisher,
    )
