"""Hostile stored records go to the dead letters with a reason; the rest of the fetch flows.

Embedded: records are broken in the store itself (a header name that is not UTF-8, a
truncated header blob, an unknown header format byte, timestamps no date can hold). Kafka:
a raw confluent-kafka producer writes what a foreign client could (timestamps far outside
any date, binary header values, no key, a large header); it cannot write header names
that are not UTF-8 (confluent-kafka crashes on them), so those are covered on embedded.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_kafka
from tests.helpers import wait_until
from tidings import App, Event
from tidings.backends.embedded.schema import OFFSET_BITS


class HostileParcel(Event):
    n: int


def ce(n: int) -> list[tuple[str, bytes]]:
    return [("ce_type", b"HostileParcel"), ("ce_id", f"parcel-{n}".encode())]


def value(n: int) -> bytes:
    return HostileParcel(n=n).model_dump_json().encode()


def committed(app: App, group: str, topic: str) -> int:
    for g in app.backend.groups():
        if g.group == group:
            return sum(p.committed or 0 for p in g.partitions if p.topic == topic)
    return 0


def read_all(app: App, topic: str, expect: int) -> list[Any]:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list[Any] = []
    for _ in range(300):
        records += reader.fetch(500, 0.1)
        if len(records) >= expect:
            break
    reader.close()
    return records


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[App]:
    app = App("hostile", broker=f"embedded://{tmp_path / 'data'}")
    yield app
    app.close()


def test_embedded_records_with_broken_headers_or_timestamps_are_dead_lettered(
    embedded: App, tmp_path: Path, topic_name: str
) -> None:
    app = embedded
    topic = app.topic(topic_name)
    handled: list[int] = []

    @app.consumer(topic, group="sorting")
    async def sort(e: HostileParcel) -> None:
        handled.append(e.n)

    app.publish_many(topic, [(None, HostileParcel(n=n)) for n in range(7)])
    good_blob = b"\x01" + struct.pack(">HI", 7, 6) + b"ce_typeParcel"
    broken: dict[int, tuple[str, object]] = {
        1: ("headers", b"\x01" + struct.pack(">HI", 2, 1) + b"\xff\xfe" + b"v" + good_blob[1:]),
        2: ("headers", good_blob[:-3]),
        3: ("headers", b"\x07" + good_blob[1:]),
        4: ("ts", 1e300),
        5: ("ts", "yesterday"),
    }
    with sqlite3.connect(tmp_path / "data" / "tidings.db") as raw:
        (pid,) = raw.execute("SELECT pid FROM partitions WHERE topic = ?", (topic_name,)).fetchone()
        for offset, (column, bad) in broken.items():
            raw.execute(
                f"UPDATE records SET {column} = ? WHERE pos = ?",
                (bad, (pid << OFFSET_BITS) | offset),
            )
    with app.running():
        wait_until(lambda: committed(app, "sorting", topic_name) == 7, 30, "the whole fetch")
    assert handled == [0, 6]
    letters = read_all(app, f"{topic_name}.sorting.dlq", 5)
    reasons = {int(dict(r.headers)["tidings-dlq-original-offset"]): r for r in letters}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    for offset, letter in reasons.items():
        headers = dict(letter.headers)
        want = b"bad_headers" if broken[offset][0] == "headers" else b"bad_timestamp"
        assert headers["tidings-dlq-reason"] == want, (offset, headers)
        assert letter.value == value(offset)
    assert b"not UTF-8" in dict(reasons[1].headers)["tidings-dlq-error-message"]
    assert b"truncated" in dict(reasons[2].headers)["tidings-dlq-error-message"]
    assert b"format 7" in dict(reasons[3].headers)["tidings-dlq-error-message"]
    assert dict(reasons[4].headers)["tidings-dlq-original-time"] == b"1e+300"


@pytest.mark.kafka
def test_kafka_records_with_hostile_content_are_dead_lettered(topic_name: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = require_kafka()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    lenient = {"message.timestamp.after.max.ms": str(2**63 - 1)}  # Kafka 4 refuses > 1 h ahead
    admin.create_topics([NewTopic(topic_name, 1, 1, config=lenient)])[topic_name].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    sent: list[str] = []

    def produce(n: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", ce(n))
        kwargs.setdefault("value", value(n))
        producer.produce(topic_name, on_delivery=lambda err, _: sent.append(str(err)), **kwargs)
        producer.flush(30)  # one at a time: the broker refuses a whole batch for one record

    produce(0, key=b"k")
    produce(1, key=b"k", timestamp=2**62)  # year 146 million
    produce(2, key=b"k", timestamp=-(2**62))
    produce(3, headers=[*ce(3), ("blob", bytes(range(256))), ("none", None)], value=b"{bad")
    produce(4, key=b"\xff\x00", headers=[*ce(4), ("big", b"x" * 200_000)], value=b"[]")
    produce(5, key=b"k")
    assert sent == ["None"] * 6, sent

    app = App("hostile", broker=f"kafka://{bootstrap}")
    topic = app.topic(topic_name)
    handled: list[int] = []

    @app.consumer(topic, group="sorting")
    async def sort(e: HostileParcel) -> None:
        handled.append(e.n)

    try:
        with app.running():
            wait_until(lambda: committed(app, "sorting", topic_name) == 6, 60, "the whole fetch")
        assert handled == [0, 5]
        letters = read_all(app, f"{topic_name}.sorting.dlq", 4)
        by_offset = {int(dict(r.headers)["tidings-dlq-original-offset"]): r for r in letters}
        assert sorted(by_offset) == [1, 2, 3, 4]
        reasons = {o: dict(r.headers)["tidings-dlq-reason"] for o, r in by_offset.items()}
        assert reasons == {
            1: b"bad_timestamp",
            2: b"bad_timestamp",
            3: b"bad_json",
            4: b"schema_violation",
        }
        assert dict(by_offset[3].headers)["blob"] == bytes(range(256))
        assert by_offset[3].key is None
        assert dict(by_offset[4].headers)["big"] == b"x" * 200_000
    finally:
        app.close()
