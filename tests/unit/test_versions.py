"""Event versions on the wire and upcaster chains, without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidings import App, ConfigurationError, Context, DecodeError, Event, upcaster
from tidings.publisher import Publisher
from tidings.records import Record
from tidings.testing import FakeClock, Harness
from tidings.wire import (
    H_DATASCHEMA,
    ce_headers,
    decode_data,
    encode,
    read_envelope,
    version_uri,
)


class VPlain(Event):
    name: str


class VRenamed(Event, version=3):
    full_name: str
    title: str


@upcaster(VRenamed, from_version=1)
def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"full_name": payload.pop("name")}


@upcaster(VRenamed, from_version=2)
def _v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "title": "none"}


def record(value: bytes, version: int, event_type: str = "VRenamed") -> Record:
    headers = ce_headers(b"id", b"src", event_type.encode(), b"2026-01-01T00:00:00Z")
    uri = version_uri(event_type, version)
    if uri is not None:
        headers += ((H_DATASCHEMA, uri),)
    return Record("t", 0, 7, b"k", value, headers, 0.0)


def decode(rec: Record) -> Event:
    env, data = read_envelope(rec)
    return decode_data(rec, env, data)


def test_version_1_events_carry_no_dataschema_so_the_wire_is_unchanged() -> None:
    _, headers, _ = encode(VPlain(name="x"), source="s")
    assert H_DATASCHEMA not in dict(headers)
    assert VPlain.event_version == 1


def test_later_versions_carry_a_dataschema_uri_naming_type_and_version() -> None:
    _, headers, _ = encode(VRenamed(full_name="x", title="y"), source="s")
    assert dict(headers)[H_DATASCHEMA] == b"urn:tidings:event:VRenamed:v3"


def test_the_publisher_writes_the_dataschema_the_wire_format_defines() -> None:
    publisher = Publisher("accounts", lambda: None, FakeClock(0.0))  # type: ignore[arg-type,return-value]
    rec, eid = publisher.build("t", VRenamed(full_name="a", title="b"), headers={"x": "1"})
    expected = ce_headers(
        eid.encode(),
        b"accounts",
        b"VRenamed",
        b"1970-01-01T00:00:00.000Z",
        b"urn:tidings:event:VRenamed:v3",
    )
    assert rec.headers == (*expected, ("x", b"1"))


def test_upcasters_run_in_order_from_the_record_version() -> None:
    assert decode(record(b'{"name": "Ada"}', 1)) == VRenamed(full_name="Ada", title="none")
    assert decode(record(b'{"full_name": "Ada"}', 2)) == VRenamed(full_name="Ada", title="none")
    assert decode(record(b'{"full_name": "A", "title": "t"}', 3)) == VRenamed(
        full_name="A", title="t"
    )


def test_a_newer_version_is_refused_with_a_reason_that_says_what_to_deploy() -> None:
    with pytest.raises(DecodeError) as err:
        decode(record(b'{"full_name": "A", "title": "t"}', 4))
    assert err.value.reason == "version_too_new"
    assert "version 4 is newer than this consumer's 3; deploy the consumer first" in str(err.value)
    assert "t[0]@7" in str(err.value)


def test_a_missing_upcaster_and_a_failing_one_are_named() -> None:
    class VGap(Event, version=2):
        a: int

    with pytest.raises(DecodeError) as err:
        decode(record(b'{"a": 1}', 1, "VGap"))
    assert err.value.reason == "no_upcaster"
    assert "@upcaster(VGap, from_version=1)" in str(err.value)

    @upcaster(VGap, from_version=1)
    def broken(payload: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("b")

    with pytest.raises(DecodeError) as err:
        decode(record(b'{"a": 1}', 1, "VGap"))
    assert err.value.reason == "upcast_failed"


def test_a_foreign_dataschema_is_read_as_the_current_version() -> None:
    rec = record(b'{"full_name": "A", "title": "t"}', 3)
    rec = rec._replace(headers=(*rec.headers[:-1], (H_DATASCHEMA, b"https://x.example/s.json")))
    assert decode(rec) == VRenamed(full_name="A", title="t")


@pytest.mark.parametrize("bad", [0, -1, "2", True])
def test_a_version_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="integer >= 1"):

        class VBad(Event, version=bad):
            pass


def test_an_upcaster_must_start_below_the_class_version() -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 2"):
        upcaster(VRenamed, from_version=3)
    with pytest.raises(ConfigurationError, match="already has the upcaster"):

        @upcaster(VRenamed, from_version=1)
        def other(payload: dict[str, Any]) -> dict[str, Any]:
            return payload


def test_the_harness_upcasts_an_old_payload_for_the_handler() -> None:
    app = App("versions-harness", broker="memory://never-used")
    topic = app.topic("people")
    got: list[VRenamed] = []

    @app.consumer(topic, group="g")
    def handle(event: VRenamed, ctx: Context) -> None:
        got.append(event)

    with Harness(app) as h:
        h.publish_payload(topic, VRenamed, {"name": "Ada"}, version=1, key="a")
        h.publish_payload(topic, VRenamed, {"full_name": "B", "title": "t"}, version=4, key="b")
        h.drain()
        (letter,) = h.dead_letters("people", "g")
    app.close()
    assert got == [VRenamed(full_name="Ada", title="none")]
    assert letter.reason == "version_too_new" and letter.event is None


def test_a_structured_cloudevent_names_its_version_in_dataschema() -> None:
    doc = {
        "specversion": "1.0",
        "id": "x",
        "type": "VRenamed",
        "source": "s",
        "dataschema": "urn:tidings:event:VRenamed:v2",
        "data": {"full_name": "Ada"},
    }
    headers = (("content-type", b"application/cloudevents+json"),)
    rec = Record("t", 0, 1, None, json.dumps(doc).encode(), headers, 0.0)
    assert decode(rec) == VRenamed(full_name="Ada", title="none")  # upcast from v2, not v1
