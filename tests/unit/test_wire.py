import json

import pytest

from tidings import DecodeError, Event
from tidings.exceptions import UnknownEventType, UnsupportedContentType
from tidings.publisher import Publisher
from tidings.records import Record
from tidings.testing import FakeClock
from tidings.wire import ce_headers, decode_data, encode, parse_time, read_envelope


class WireOpened(Event):
    account_id: str
    plan: str = "free"


def record(value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> Record:
    return Record("t", 0, 7, b"42", value, headers, 1.0)


def test_encode_writes_cloudevents_binary_headers() -> None:
    value, headers, eid = encode(WireOpened(account_id="42"), source="accounts", timestamp=0.0)
    h = dict(headers)
    assert h["ce_specversion"] == b"1.0"
    assert h["ce_id"].decode() == eid and len(eid) == 36 and eid[14] == "7"
    assert h["ce_source"] == b"accounts"
    assert h["ce_type"] == b"WireOpened"
    assert h["ce_time"] == b"1970-01-01T00:00:00.000Z"
    assert h["content-type"] == b"application/json"
    assert json.loads(value) == {"account_id": "42", "plan": "free"}
    assert parse_time(h["ce_time"].decode()) == 0.0


def test_round_trip() -> None:
    value, headers, eid = encode(WireOpened(account_id="1"), source="s")
    rec = record(value, headers)
    env, data = read_envelope(rec)
    assert env.event_id == eid and env.event_type == "WireOpened" and env.source == "s"
    assert decode_data(rec, env, data) == WireOpened(account_id="1")


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"{not json", "bad_json"), (b'{"plan": 3}', "schema_violation"), (None, "empty")],
)
def test_bad_payloads_raise_decode_error_with_reason(value: bytes | None, reason: str) -> None:
    rec = record(value, (("ce_type", b"WireOpened"),))
    env, data = read_envelope(rec)
    with pytest.raises(DecodeError) as info:
        decode_data(rec, env, data)
    assert info.value.reason == reason
    assert "t[0]@7" in str(info.value)


def test_unknown_type_and_content_type() -> None:
    rec = record(b"{}", (("ce_type", b"NoSuchType"),))
    env, data = read_envelope(rec)
    with pytest.raises(UnknownEventType, match="NoSuchType"):
        decode_data(rec, env, data)
    with pytest.raises(UnsupportedContentType, match="application/x-python-pickle"):
        read_envelope(record(b"x", (("content-type", b"application/x-python-pickle"),)))
    with pytest.raises(DecodeError, match="no ce_type"):
        read_envelope(record(b"{}", ()))


def test_structured_mode_is_accepted() -> None:
    doc = {
        "specversion": "1.0",
        "id": "abc",
        "type": "WireOpened",
        "source": "x",
        "data": {"account_id": "9"},
    }
    rec = record(json.dumps(doc).encode(), (("content-type", b"application/cloudevents+json"),))
    env, data = read_envelope(rec)
    assert env.event_id == "abc"
    assert decode_data(rec, env, data) == WireOpened(account_id="9")


def test_the_publisher_writes_the_headers_the_wire_format_defines() -> None:
    """Publisher inlines `ce_headers` in its batch loop: the two must not drift apart."""
    publisher = Publisher("accounts", lambda: None, FakeClock(0.0))  # type: ignore[arg-type,return-value]
    record, eid = publisher.build("t", WireOpened(account_id="42"), key="42", headers={"x": "1"})
    expected = ce_headers(eid.encode(), b"accounts", b"WireOpened", b"1970-01-01T00:00:00.000Z")
    assert record.headers == (*expected, ("x", b"1"))
