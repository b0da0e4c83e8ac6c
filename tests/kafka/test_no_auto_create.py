"""On Kafka only declared topics are created, with their partitions, never by a metadata lookup.

librdkafka's producer (and the admin client, a producer inside) asks the broker to create
any topic it looks up; with the broker's `auto.create.topics.enable=true` (its default, and
the test broker's) a typo or a deleted topic came back with one partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from confluent_kafka.admin import AdminClient

from tidings import App, Event
from tidings.exceptions import TopicNotFound

pytestmark = pytest.mark.kafka


class AutoCreateProbe(Event):
    n: int


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    """An admin client of the test's own that cannot auto-create either."""
    return AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})


def exists(admin: AdminClient, topic: str) -> int | None:
    """Return the topic's partition count, or None if the broker does not have it."""
    md = admin.list_topics(timeout=10).topics.get(topic)
    return None if md is None or md.error is not None else len(md.partitions)


@pytest.fixture
def apps(bootstrap: str) -> Iterator[list[App]]:
    opened: list[App] = []
    yield opened
    for app in opened:
        app.close()


def test_publishing_to_a_missing_topic_does_not_create_it(
    bootstrap: str, admin: AdminClient, topic_name: str, apps: list[App]
) -> None:
    app = App("typo", broker=f"kafka://{bootstrap}")
    apps.append(app)
    with pytest.raises(TopicNotFound):
        app.publish(topic_name, AutoCreateProbe(n=1))
    with pytest.raises(TopicNotFound):  # a delayed event looks the topic up on its own
        app.publish(topic_name, AutoCreateProbe(n=1), delay=timedelta(hours=1))
    time.sleep(1.0)  # the broker creates asynchronously: give it time to show up
    assert exists(admin, topic_name) is None


def test_a_publisher_opened_before_a_delete_does_not_recreate_the_topic(
    bootstrap: str, admin: AdminClient, topic_name: str, apps: list[App]
) -> None:
    url = f"kafka://{bootstrap}"
    old = App("old", broker=url, delivery_timeout=3)
    apps.append(old)
    topic = old.topic(topic_name, partitions=3)
    old.publish(topic, AutoCreateProbe(n=1))
    admin.delete_topics([topic_name])[topic_name].result()
    deadline = time.monotonic() + 30
    while exists(admin, topic_name) is not None:
        assert time.monotonic() < deadline, "the topic was never deleted"
        time.sleep(0.1)

    with pytest.raises(TopicNotFound, match=f"Topic '{topic_name}' does not exist") as caught:
        old.publish(topic, AutoCreateProbe(n=2))  # known to this producer: fails at its timeout
    assert "It existed when this producer first used it" in "".join(caught.value.__notes__)
    with pytest.raises(TopicNotFound):
        old.publish(topic, AutoCreateProbe(n=3))  # now forgotten: refused at once
    assert exists(admin, topic_name) is None

    fresh = App("fresh", broker=url)
    apps.append(fresh)
    fresh.publish(fresh.topic(topic_name, partitions=3), AutoCreateProbe(n=4))
    assert exists(admin, topic_name) == 3
    stored = old.publish(
        topic, AutoCreateProbe(n=5), key="k"
    )  # the old publisher sees the new topic
    assert stored.offset >= 0


def test_a_declared_partition_count_that_differs_is_reported(
    bootstrap: str, admin: AdminClient, topic_name: str, apps: list[App]
) -> None:
    url = f"kafka://{bootstrap}"
    one = App("one", broker=url)
    apps.append(one)
    one.publish(one.topic(topic_name), AutoCreateProbe(n=1))  # created with 1 partition
    three = App("three", broker=url)
    apps.append(three)
    with pytest.raises(Exception, match=r"declared with partitions=3.*has partitions=1"):
        three.publish(three.topic(topic_name, partitions=3), AutoCreateProbe(n=2))
    assert exists(admin, topic_name) == 1
