"""publish_many on every backend: results in order across chunks, refusals, delayed batches."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from tests.helpers import wait_until
from tidings import App, Event, EventTooLarge, Published
from tidings.partitioner import partition_for
from tidings.publisher import STREAM_CHUNK
from tidings.records import Record
from tidings.wire import H_ID


class Parcel(Event):
    n: int
    note: str = ""


def read_all(app: App, topic: str, count: int) -> list[Record]:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    got: list[Record] = []
    try:
        for _ in range(200):
            got += reader.fetch(1000, 0.2)
            if len(got) >= count:
                break
    finally:
        reader.close()
    return got


def stored(app: App, topic: str) -> int:
    info = next(t for t in app.backend.topics() if t.name == topic)
    return sum(e - s for s, e in zip(info.start_offsets, info.end_offsets, strict=True))


def test_publish_many_says_where_each_event_went_across_chunks(
    broker_url: str, topic_name: str
) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=3)
    count = 2 * STREAM_CHUNK + 500
    published = app.publish_many(topic, [(f"k{i % 50}", Parcel(n=i)) for i in range(count)])

    assert len(published) == count
    assert len({p.event_id for p in published}) == count
    records = read_all(app, topic_name, count)
    by_place = {(r.partition, r.offset): r for r in records}
    assert len(by_place) == count
    for i, p in enumerate(published):
        record = by_place[(p.partition, p.offset)]
        assert record.header(H_ID) == p.event_id.encode()
        assert Parcel.model_validate_json(record.value or b"").n == i
        assert p.partition == partition_for(f"k{i % 50}".encode(), 3)
    app.close()


def test_publish_many_refuses_an_oversize_event_and_stores_none_after_it(
    broker_url: str, topic_name: str
) -> None:
    app = App("contract", broker=broker_url, max_event_bytes=4_000)
    topic = app.topic(topic_name, partitions=2)
    bad = STREAM_CHUNK + 200
    items = [Parcel(n=i, note="x" * (10_000 if i == bad else 10)) for i in range(bad + 300)]

    with pytest.raises(EventTooLarge, match="max_event_bytes=4,000") as caught:
        app.publish_many(topic, items)

    # Kafka streams chunks while encoding: the chunk before the refused event is stored and
    # the error says so. Local backends gather the whole call first and store nothing.
    kept = stored(app, topic_name)
    if broker_url.startswith("kafka"):
        assert kept == STREAM_CHUNK
        assert f"{STREAM_CHUNK} records sent before this error were stored" in "".join(
            getattr(caught.value, "__notes__", [])
        )
    else:
        assert kept == 0
    numbers = sorted(
        Parcel.model_validate_json(r.value or b"").n for r in read_all(app, topic_name, kept)
    )
    assert numbers == list(range(kept))
    app.close()


def test_a_delayed_batch_larger_than_a_chunk_arrives_whole(
    broker_url: str, topic_name: str
) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=2)
    seen: set[int] = set()
    lock = threading.Lock()

    @app.consumer(topic, group="later")
    def later(e: Parcel) -> None:
        with lock:
            seen.add(e.n)

    count = STREAM_CHUNK + 300
    with app.running():
        published = app.publish_many(
            topic, [(str(i), Parcel(n=i)) for i in range(count)], delay=timedelta(seconds=1)
        )
        assert {p.offset for p in published} == {-1}
        assert [p.partition for p in published] == [
            partition_for(str(i).encode(), 2) for i in range(count)
        ]
        wait_until(lambda: len(seen) == count, 60, "every delayed event handled")
    assert seen == set(range(count))
    app.close()


def test_publish_async_keeps_many_publishes_in_flight(broker_url: str, topic_name: str) -> None:
    app = App("contract", broker=broker_url)
    topic = app.topic(topic_name, partitions=3)
    count = 300

    async def publish_all() -> list[Published]:
        await app.publish_async(topic, Parcel(n=-1), key="warm")
        return await asyncio.gather(
            *(app.publish_async(topic, Parcel(n=i), key=f"k{i}") for i in range(count))
        )

    published = asyncio.run(publish_all())
    assert len({(p.partition, p.offset) for p in published}) == count
    records = {(r.partition, r.offset): r for r in read_all(app, topic_name, count + 1)}
    for i, p in enumerate(published):
        assert Parcel.model_validate_json(records[(p.partition, p.offset)].value or b"").n == i
    app.close()
