"""CloudEvents 1.0 Kafka protocol binding, binary content mode.

Headers ``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``, ``ce_time`` and
``content-type: application/json``; the record key is the partition key (UTF-8); the value
is the JSON of the event's fields. Structured mode (``application/cloudevents+json``) is
accepted on decode for interoperability. Nothing but JSON is ever decoded.

Versions: an event whose class is at version N > 1 also carries the CloudEvents
``ce_dataschema`` attribute ``urn:tidings:event:<type>:v<N>``. The CloudEvents spec says
an incompatible change to the data's schema SHOULD change ``dataschema``, and a version
bump is exactly that change, so the version rides on the attribute made for it and any
CloudEvents reader sees it. Version 1 carries no ``ce_dataschema``: events of classes that
never declared a version are byte-for-byte what they were. A ``ce_dataschema`` that is not
a tidings URI (another producer's) is read as the consumer's own version.
On decode, an older version is upcast (see `tidings.upcasting`), a newer one is refused
with reason ``version_too_new``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tidings.events import Event, event_class
from tidings.exceptions import DecodeError, UnknownEventType, UnsupportedContentType
from tidings.records import UNREADABLE_HEADERS, Headers, Record
from tidings.upcasting import MissingUpcaster, upcast

SPECVERSION = b"1.0"
CONTENT_TYPE = b"application/json"
STRUCTURED = "application/cloudevents+json"
INTERNAL_PREFIX = "tidings-"
_getrandbits = random.getrandbits

H_ID = "ce_id"
H_TYPE = "ce_type"
H_SOURCE = "ce_source"
H_TIME = "ce_time"
H_SPEC = "ce_specversion"
H_CONTENT_TYPE = "content-type"
H_CORRELATION = "tidings-correlation-id"
H_CAUSATION = "tidings-causation-id"
H_TRACEPARENT = "traceparent"
H_DATASCHEMA = "ce_dataschema"
SCHEMA_URN = "urn:tidings:event:"
JSON_HEADER = (H_CONTENT_TYPE, CONTENT_TYPE)
RESERVED_PREFIXES = ("ce_", INTERNAL_PREFIX)


def is_reserved_header(name: str) -> bool:
    """Whether header `name` is tidings' to write: ``ce_*``, ``content-type``, ``tidings-*``.

    Compared case-insensitively: other Kafka clients may not treat case as tidings does.
    """
    lower = name.lower()
    return lower.startswith(RESERVED_PREFIXES) or lower == H_CONTENT_TYPE


def new_event_id() -> str:
    """Return a UUIDv7 string: time-ordered, unique without coordination."""
    return new_event_ids(1)[0]


def new_event_ids(count: int) -> list[str]:
    """Return `count` UUIDv7 strings stamped with the current millisecond.

    The 74 random bits of each come from `random` (reseeded in forked children by
    CPython): event ids need uniqueness, not secrecy, and this is on the publish hot path.
    The 12 bits after the version are drawn once per call, the 62 after the variant once
    per id, so only the formatting of those 62 bits is paid per event.
    """
    ms = time.time_ns() // 1_000_000
    stamp = f"{ms & 0xFFFFFFFFFFFF:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7{_getrandbits(12):03x}-"
    rand = _getrandbits
    return [
        f"{head}{t[:4]}-{t[4:]}"
        for t in [f"{rand(62) | 0x8000000000000000:016x}" for _ in range(count)]
    ]


def format_time(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with millisecond precision."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> float:
    """Parse an RFC 3339 timestamp into epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def encode(
    event: Event,
    *,
    source: str,
    event_id: str | None = None,
    timestamp: float | None = None,
    extra_headers: Headers = (),
) -> tuple[bytes, Headers, str]:
    """Encode `event` as (value, headers, event_id) in CloudEvents binary mode."""
    eid = event_id or new_event_id()
    stamp = format_time(timestamp if timestamp is not None else time.time()).encode()
    headers = ce_headers(
        eid.encode(), source.encode(), event.event_type.encode(), stamp, schema_uri(type(event))
    )
    return event.__pydantic_serializer__.to_json(event), headers + extra_headers, eid


def ce_headers(
    eid: bytes, source: bytes, event_type: bytes, stamp: bytes, dataschema: bytes | None = None
) -> Headers:
    """The CloudEvents binary-mode headers of one event, in the order tidings writes them.

    `dataschema` (see `schema_uri`) follows the content type, only for versions above 1.
    `Publisher` writes the same tuple inline in its batch loop (a call per event costs).
    """
    headers: Headers = (
        (H_SPEC, SPECVERSION),
        (H_ID, eid),
        (H_SOURCE, source),
        (H_TYPE, event_type),
        (H_TIME, stamp),
        JSON_HEADER,
    )
    return headers if dataschema is None else (*headers, (H_DATASCHEMA, dataschema))


_SCHEMA_URIS: dict[type[Event], bytes | None] = {}


def schema_uri(cls: type[Event]) -> bytes | None:
    """The ``ce_dataschema`` value of `cls`'s events: None at version 1 (no header)."""
    try:
        return _SCHEMA_URIS[cls]
    except KeyError:
        uri = _SCHEMA_URIS[cls] = version_uri(cls.event_type, cls.event_version)
        return uri


def version_uri(event_type: str, version: int) -> bytes | None:
    """The ``ce_dataschema`` of `event_type` at `version`: None at version 1."""
    return None if version == 1 else f"{SCHEMA_URN}{event_type}:v{version}".encode()


def schema_version(dataschema: bytes | None, current: int) -> int:
    """The event version a ``ce_dataschema`` value names; `current` for a foreign URI."""
    if dataschema is None:
        return 1
    text = dataschema.decode("utf-8", "replace")
    if not text.startswith(SCHEMA_URN):
        return current
    _, _, tail = text.rpartition(":v")
    return int(tail) if tail.isdigit() and int(tail) >= 1 else current


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents attributes of a decoded record."""

    event_id: str
    event_type: str
    source: str
    time: float | None
    dataschema: bytes | None = None
    """``dataschema``: names the event's version above 1 (see `schema_uri`)."""


def read_envelope(record: Record) -> tuple[Envelope, bytes | None]:
    """Read the CloudEvents attributes of `record`; return them and the data bytes.

    Raises:
        DecodeError: the record carries no event type, is not JSON, or its backend could not
            read its headers.
    """
    ce: dict[str, bytes] = {}
    for name, value in record.headers:
        if name.startswith("ce_") or name == H_CONTENT_TYPE:
            ce[name] = value
        elif name == UNREADABLE_HEADERS:
            raise DecodeError(
                f"{_where(record)}: its headers cannot be read "
                f"({value.decode('utf-8', 'replace')}); the producer wrote them broken.",
                reason="bad_headers",
            )
    ctype = ce.get(H_CONTENT_TYPE, CONTENT_TYPE).decode("latin-1").split(";")[0].strip().lower()
    if ctype == STRUCTURED:
        return _structured(record)
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedContentType(
            f"{_where(record)}: content type {ctype!r} is not JSON; tidings decodes only "
            "application/json (and application/cloudevents+json). Publish JSON values."
        )
    etype = ce.get(H_TYPE)
    if not etype:
        raise DecodeError(
            f"{_where(record)}: no ce_type header; every tidings event names its type. "
            "Publish with tidings or set the CloudEvents ce_type header.",
            reason="missing_type",
        )
    raw_time = ce.get(H_TIME)
    env = Envelope(
        event_id=(
            ce.get(H_ID) or f"{record.topic}-{record.partition}-{record.offset}".encode()
        ).decode("utf-8", "replace"),
        event_type=etype.decode("utf-8", "replace"),
        source=(ce.get(H_SOURCE) or b"").decode("utf-8", "replace"),
        time=_maybe_time(raw_time.decode("utf-8", "replace")) if raw_time else None,
        dataschema=ce.get(H_DATASCHEMA),
    )
    return env, record.value


def _structured(record: Record) -> tuple[Envelope, bytes | None]:
    try:
        doc = json.loads(record.value or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{_where(record)}: invalid JSON: {exc}", reason="bad_json") from exc
    if not isinstance(doc, dict) or "type" not in doc:
        raise DecodeError(
            f"{_where(record)}: structured CloudEvent without a `type` attribute",
            reason="missing_type",
        )
    env = Envelope(
        event_id=str(doc.get("id") or f"{record.topic}-{record.partition}-{record.offset}"),
        event_type=str(doc["type"]),
        source=str(doc.get("source", "")),
        time=_maybe_time(str(doc["time"])) if doc.get("time") else None,
        dataschema=str(doc["dataschema"]).encode() if doc.get("dataschema") else None,
    )
    return env, json.dumps(doc.get("data")).encode()


def _maybe_time(value: str) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        return None


def decode_data(record: Record, env: Envelope, data: bytes | None) -> Event:
    """Validate `data` into the Event class registered for the envelope's type.

    Raises:
        UnknownEventType: no class is registered for the type.
        DecodeError: the value is not valid JSON or does not validate (reason says which).
    """
    cls = event_class(env.event_type)
    if cls is None:
        raise UnknownEventType(
            f"{_where(record)}: unknown event type {env.event_type!r}; define an Event subclass "
            "with that name (or event_type) and import it before the app runs."
        )
    return validate(record, cls, data, env.dataschema)


_SCAN: Any = object()


def validate(
    record: Record, cls: type[Event], data: bytes | None, dataschema: bytes | None = _SCAN
) -> Event:
    """Validate JSON `data` into `cls`, raising DecodeError with a reason code.

    `dataschema` is the record's ``ce_dataschema`` header when the caller has read it
    (else it is looked up). When it names another version than the class's, the payload
    is upcast (an older version) or refused (a newer one, reason ``version_too_new``).
    """
    if data is None:
        raise DecodeError(f"{_where(record)}: empty value (tombstone)", reason="empty")
    if dataschema is _SCAN:
        dataschema = record.header(H_DATASCHEMA)
    if dataschema != schema_uri(cls):
        version = schema_version(dataschema, cls.event_version)
        if version != cls.event_version:
            return _other_version(record, cls, data, version)
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        kinds = {e["type"] for e in exc.errors()}
        reason = "bad_json" if kinds & {"json_invalid", "json_type"} else "schema_violation"
        raise DecodeError(
            f"{_where(record)}: {reason} for {cls.event_type}: {_short(exc)}", reason=reason
        ) from None
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"{_where(record)}: {exc}", reason="bad_json") from None
    except Exception as exc:  # a validator may raise anything; pydantic passes it through
        raise DecodeError(
            f"{_where(record)}: schema_violation for {cls.event_type}: a validator raised "
            f"{type(exc).__name__}: {exc}",
            reason="schema_violation",
        ) from exc


def _other_version(record: Record, cls: type[Event], data: bytes, version: int) -> Event:
    """Upcast a payload of an older `version` into `cls`, or refuse a newer one."""
    name, current = cls.event_type, cls.event_version
    if version > current:
        raise DecodeError(
            f"{_where(record)}: {name} version {version} is newer than this consumer's "
            f"{current}; deploy the consumer first (a class with version={version}), then "
            "replay the dead letters.",
            reason="version_too_new",
        )
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeError(f"{_where(record)}: invalid JSON: {exc}", reason="bad_json") from None
    if not isinstance(payload, dict):
        raise DecodeError(
            f"{_where(record)}: schema_violation for {name} v{version}: the value is "
            f"{type(payload).__name__}, not an object",
            reason="schema_violation",
        )
    try:
        payload = upcast(cls, payload, version)
    except MissingUpcaster as exc:
        raise DecodeError(
            f"{_where(record)}: {name} version {version} needs an upcaster from version "
            f"{exc.from_version} to {exc.from_version + 1}; add `@upcaster({cls.__name__}, "
            f"from_version={exc.from_version})`, then replay the dead letters.",
            reason="no_upcaster",
        ) from None
    except Exception as exc:
        raise DecodeError(
            f"{_where(record)}: the upcaster of {name} from version {version} failed: "
            f"{type(exc).__name__}: {exc}. Fix it, then replay the dead letters.",
            reason="upcast_failed",
        ) from None
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        raise DecodeError(
            f"{_where(record)}: schema_violation for {name} (upcast from version {version}): "
            f"{_short(exc)}",
            reason="schema_violation",
        ) from None


def _short(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"]) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def header_text(headers: Headers, name: str) -> str | None:
    """Return the last value of header `name` as text, or None."""
    for k, v in reversed(headers):
        if k == name:
            return v.decode("utf-8", "replace")
    return None


def json_headers(headers: Headers) -> dict[str, Any]:
    """Return headers as a JSON-friendly dict (text where UTF-8, else repr)."""
    out: dict[str, Any] = {}
    for k, v in headers:
        try:
            out[k] = v.decode("utf-8")
        except UnicodeDecodeError:
            out[k] = repr(v)
    return out
