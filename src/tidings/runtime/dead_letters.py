"""Dead-letter records: the original record plus headers that say why and where from."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from tidings.exceptions import BrokerUnavailable, DeliveryUncertain, EventTooLarge, StorageError
from tidings.records import Headers, OutgoingRecord, Record
from tidings.wire import H_ID, H_TYPE, format_time, header_text

H_REASON = "tidings-dlq-reason"
H_ERROR_TYPE = "tidings-dlq-error-type"
H_ERROR_MESSAGE = "tidings-dlq-error-message"
H_TRACEBACK = "tidings-dlq-traceback"
H_ATTEMPTS = "tidings-dlq-attempts"
H_GROUP = "tidings-dlq-group"
H_TOPIC = "tidings-dlq-original-topic"
H_PARTITION = "tidings-dlq-original-partition"
H_OFFSET = "tidings-dlq-original-offset"
H_TIME = "tidings-dlq-original-time"
H_FAILED_AT = "tidings-dlq-failed-at"
H_VALUE_DROPPED = "tidings-dlq-value-dropped"
"""Set when the dead letter could not carry the value: why; the original is still on its
topic at the partition and offset the other headers name (until retention deletes it)."""
H_REPLAY_GROUP = "tidings-replay-group"
"""Set on replayed events: only this group handles them; other groups skip them."""

H_REPLAYED = "tidings-dlq-replayed"
"""On a replay marker: ``PARTITION@OFFSET`` of the dead letter (same topic) that was replayed.

`tidings dlq replay` appends one marker per replayed dead letter to the dead-letter topic
itself (no value), so which dead letters were replayed is kept on the broker, the same way
on every backend. Readers of dead letters skip markers (`is_replay_marker`)."""
H_REPLAYED_ID = "tidings-dlq-replayed-id"
H_REPLAYED_AT = "tidings-dlq-replayed-at"
H_REPLAYED_TO = "tidings-dlq-replayed-to"

H_RETRY_ATTEMPT = "tidings-retry-attempt"
H_RETRY_TOPIC = "tidings-retry-original-topic"
H_RETRY_PARTITION = "tidings-retry-original-partition"
H_RETRY_OFFSET = "tidings-retry-original-offset"
RETRY_HEADERS = frozenset({H_RETRY_ATTEMPT, H_RETRY_TOPIC, H_RETRY_PARTITION, H_RETRY_OFFSET})

DLQ_HEADERS = frozenset(
    {
        H_REASON,
        H_ERROR_TYPE,
        H_ERROR_MESSAGE,
        H_TRACEBACK,
        H_ATTEMPTS,
        H_GROUP,
        H_TOPIC,
        H_PARTITION,
        H_OFFSET,
        H_TIME,
        H_FAILED_AT,
        H_VALUE_DROPPED,
    }
)
TRACEBACK_LIMIT = 4000
MESSAGE_LIMIT = 1000
DLQ_ATTEMPTS = 3
"""Failed dead-letter writes after which it is written without the value."""
KEPT_HEADER_LIMIT = 1024
"""Without the value, original headers larger than this (name + value) are left out too."""
TRANSIENT = (BrokerUnavailable, DeliveryUncertain, StorageError)


def dlq_topic(topic: str, group: str) -> str:
    """Return the dead-letter topic of `group` for events from `topic`."""
    return f"{topic}.{group}.dlq"


def retry_topic(topic: str, group: str) -> str:
    """Return the retry topic of `group` for events from `topic` (Retry(keep_order=False))."""
    return f"{topic}.{group}.retry"


def original(record: Record) -> Record:
    """Return `record` as it was on its original topic if it came through a retry topic."""
    topic = record.header(H_RETRY_TOPIC)
    if topic is None:
        return record
    headers = tuple((k, v) for k, v in record.headers if k not in RETRY_HEADERS)
    return record._replace(
        topic=topic.decode(),
        partition=int(record.header(H_RETRY_PARTITION) or b"0"),
        offset=int(record.header(H_RETRY_OFFSET) or b"0"),
        headers=headers,
    )


def retry_record(record: Record, group: str, attempt: int, deliver_at: float) -> OutgoingRecord:
    """Build the record that brings `record` back to `group` for `attempt`, after a backoff."""
    first = original(record)
    headers: Headers = (
        *first.headers,
        (H_RETRY_ATTEMPT, str(attempt).encode()),
        (H_RETRY_TOPIC, first.topic.encode()),
        (H_RETRY_PARTITION, str(first.partition).encode()),
        (H_RETRY_OFFSET, str(first.offset).encode()),
    )
    return OutgoingRecord(
        retry_topic(first.topic, group), record.key, record.value, headers, None, deliver_at
    )


def must_drop_value(error: BaseException, failures: int) -> bool:
    """Return whether a dead letter whose write failed `failures` times goes without value.

    Too large: at once. A broker that is down or a full disk: never (the write is retried
    until the broker is back). Anything else: after DLQ_ATTEMPTS failures.
    """
    if isinstance(error, EventTooLarge):
        return True
    return failures >= DLQ_ATTEMPTS and not isinstance(error, TRANSIENT)


def dead_letter(
    record: Record,
    *,
    group: str,
    reason: str,
    error: BaseException,
    attempts: int,
    now: float,
    drop_value: BaseException | None = None,
) -> OutgoingRecord:
    """Build the dead-letter record for `record` (same key, value and headers).

    With `drop_value` (why the full dead letter could not be written) the value is left
    out, and original headers larger than KEPT_HEADER_LIMIT with it. Never raises, whatever
    the record holds.
    """
    try:
        record = original(record)
    except (ValueError, UnicodeDecodeError):
        pass  # broken retry headers: name the record as fetched
    kept: Headers = tuple(
        (k, v) for k, v in record.headers if k not in DLQ_HEADERS and k != H_REPLAY_GROUP
    )
    value = record.value
    extra: Headers = ()
    if drop_value is not None:
        dropped = len(kept)
        kept = tuple((k, v) for k, v in kept if len(k) + len(v) <= KEPT_HEADER_LIMIT)
        dropped -= len(kept)
        why = (
            f"value of {len(value or b''):,} bytes left out"
            + (f" with {dropped} header(s) over {KEPT_HEADER_LIMIT:,} bytes" if dropped else "")
            + f": {_text(drop_value, MESSAGE_LIMIT)}; the original is still at "
            f"{record.topic}[{record.partition}]@{record.offset}"
        )
        value, extra = None, ((H_VALUE_DROPPED, why.encode("utf-8", "replace")),)
    extra += (
        (H_REASON, reason.encode("utf-8", "replace")),
        (H_ERROR_TYPE, type(error).__qualname__.encode("utf-8", "replace")),
        (H_ERROR_MESSAGE, _text(error, MESSAGE_LIMIT).encode("utf-8", "replace")),
        (H_TRACEBACK, _traceback(error).encode("utf-8", "replace")),
        (H_ATTEMPTS, str(attempts).encode()),
        (H_GROUP, group.encode("utf-8", "replace")),
        (H_TOPIC, record.topic.encode("utf-8", "replace")),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_TIME, _time(record.timestamp).encode()),
        (H_FAILED_AT, _time(now).encode()),
    )
    return OutgoingRecord(dlq_topic(record.topic, group), record.key, value, kept + extra)


def _text(error: BaseException, limit: int) -> str:
    try:
        return str(error)[:limit]
    except Exception:  # a broken __str__ must not block the dead letter
        return f"({type(error).__qualname__}; its message could not be rendered)"


def _traceback(error: BaseException) -> str:
    try:
        tb = "".join(traceback.format_exception(error))
    except Exception:
        return _text(error, TRACEBACK_LIMIT)
    return "...\n" + tb[-TRACEBACK_LIMIT:] if len(tb) > TRACEBACK_LIMIT else tb


def _time(ts: object) -> str:
    """RFC 3339 when `ts` is a date; else its repr (a broken timestamp is shown as stored)."""
    try:
        return format_time(ts)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(ts)[:100]


def replay_record(record: Record, group: str) -> OutgoingRecord:
    """Turn a dead letter back into an event on its original topic, for `group` only."""
    headers = dict(record.headers)
    topic = headers.get(H_TOPIC, b"").decode()
    kept: Headers = tuple(
        (k, v) for k, v in record.headers if k not in DLQ_HEADERS and k != H_REPLAY_GROUP
    )
    return OutgoingRecord(
        topic, record.key, record.value, (*kept, (H_REPLAY_GROUP, group.encode()))
    )


def replay_marker(letter: Record, replayed_to: str, now: float) -> OutgoingRecord:
    """Build the marker saying `letter` (a dead letter) was replayed to `replayed_to`."""
    headers: Headers = (
        (H_REPLAYED, f"{letter.partition}@{letter.offset}".encode()),
        (H_REPLAYED_ID, dead_letter_id(letter).encode()),
        (H_REPLAYED_AT, format_time(now).encode()),
        (H_REPLAYED_TO, replayed_to.encode()),
    )
    return OutgoingRecord(letter.topic, letter.key, None, headers, letter.partition)


def is_replay_marker(record: Record) -> bool:
    """Return whether `record` in a dead-letter topic is a replay marker, not a dead letter."""
    return record.value is None and record.header(H_REPLAYED) is not None


def dead_letter_id(letter: Record) -> str:
    """Return the event id of a dead letter (its ce_id, else its original position)."""
    eid = header_text(letter.headers, H_ID)
    if eid:
        return eid
    return "-".join(header_text(letter.headers, h) or "?" for h in (H_TOPIC, H_PARTITION, H_OFFSET))


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """What a dead letter's headers say: which event, from where, and why it failed."""

    record: Record
    event_id: str
    event_type: str | None
    group: str | None
    reason: str | None
    error_type: str | None
    error_message: str | None
    traceback: str | None
    attempts: int | None
    topic: str | None
    partition: int | None
    offset: int | None
    failed_at: str | None


def read_dead_letter(record: Record) -> DeadLetterInfo:
    """Read the dead-letter headers of `record` (missing or malformed ones become None)."""

    def text(name: str) -> str | None:
        return header_text(record.headers, name)

    def number(name: str) -> int | None:
        raw = text(name)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    return DeadLetterInfo(
        record=record,
        event_id=dead_letter_id(record),
        event_type=text(H_TYPE),
        group=text(H_GROUP),
        reason=text(H_REASON),
        error_type=text(H_ERROR_TYPE),
        error_message=text(H_ERROR_MESSAGE),
        traceback=text(H_TRACEBACK),
        attempts=number(H_ATTEMPTS),
        topic=text(H_TOPIC),
        partition=number(H_PARTITION),
        offset=number(H_OFFSET),
        failed_at=text(H_FAILED_AT),
    )
