"""Which replication and min.insync.replicas each topic gets on Kafka (no broker needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tidings import App, ConfigurationError, Event, Retry
from tidings.backends.kafka.config import KafkaSettings, load_settings
from tidings.backends.kafka.replicas import check_brokers, check_existing, with_durability
from tidings.records import TopicSpec

MIN = "min.insync.replicas"


def settings(**options: object) -> KafkaSettings:
    return load_settings("127.0.0.1:1", options, environ={})


def complete(
    spec: TopicSpec, declared: dict[str, TopicSpec], *, implicit: bool, **options: object
) -> TopicSpec:
    return with_durability(spec, settings(**options), declared, implicit=implicit)


def test_a_declared_topic_keeps_its_own_settings_and_gets_min_isr_2_at_three_replicas() -> None:
    own = complete(TopicSpec("t", 3, None, 3, ((MIN, "3"),)), {}, implicit=False)
    assert (own.replication, dict(own.config)) == (3, {MIN: "3"})
    safe = complete(TopicSpec("t", 3, None, 3), {}, implicit=False)
    assert dict(safe.config) == {MIN: "2"}
    two = complete(TopicSpec("t", replication=2), {}, implicit=False)
    assert (two.replication, two.config) == (2, ())  # broker default min ISR


def test_without_any_setting_the_broker_decides() -> None:
    spec = complete(TopicSpec("t"), {}, implicit=False)
    assert (spec.replication, spec.config) == (None, ())
    assert complete(TopicSpec("t.g.dlq"), {}, implicit=True).replication is None


def test_the_app_wide_default_applies_to_every_topic_without_its_own() -> None:
    spec = complete(TopicSpec("t"), {}, implicit=False, replication=3)
    assert (spec.replication, dict(spec.config)) == (3, {MIN: "2"})
    tier = complete(TopicSpec("tidings.delay.1s", 4), {}, implicit=True, replication="3")
    assert (tier.replication, dict(tier.config)) == (3, {MIN: "2"})
    chosen = complete(TopicSpec("t"), {}, implicit=False, replication=3, min_insync_replicas=3)
    assert dict(chosen.config) == {MIN: "3"}


def test_dead_letter_and_retry_topics_inherit_from_the_topic_they_extend() -> None:
    user = TopicSpec("orders", 6, None, 5, ((MIN, "3"),))
    other = TopicSpec("orders-eu", 6, None, 3, ((MIN, "2"),))
    declared = {"orders": user, "orders-eu": other}
    dlq = complete(TopicSpec("orders.payments.dlq"), declared, implicit=True, replication=3)
    assert (dlq.replication, dict(dlq.config)) == (5, {MIN: "3"})
    # Nobody's child: the app default, else the most replicated declared topic.
    tier = complete(TopicSpec("tidings.delay.due", 4), declared, implicit=True)
    assert (tier.replication, dict(tier.config)) == (5, {MIN: "3"})
    # A declared topic never inherits: only what tidings creates itself does.
    assert complete(TopicSpec("orders.archive"), declared, implicit=False).replication is None


def test_the_cluster_must_have_the_brokers_and_existing_topics_must_match() -> None:
    check_brokers([TopicSpec("t", replication=3)], 3, "h:1")
    with pytest.raises(ConfigurationError, match=r"replication=3.*has 1 live broker"):
        check_brokers([TopicSpec("t", replication=3)], 1, "h:1")
    check_existing(TopicSpec("t"), 1, "h:1")  # undeclared: whatever it has
    with pytest.raises(ConfigurationError, match=r"exists on h:1 with 1 replica.*replication=3"):
        check_existing(TopicSpec("t", replication=3), 1, "h:1")


def test_declarations_are_validated_where_declared() -> None:
    app = App("repl", broker="memory://repl")
    spec = app.topic("t", replication=3, config={MIN: 2, "cleanup.policy": "delete"})
    assert spec.config == (("cleanup.policy", "delete"), (MIN, "2"))
    with pytest.raises(ConfigurationError, match="replication must be a whole number >= 1"):
        app.topic("u", replication=0)
    with pytest.raises(ConfigurationError, match="above replication=2"):
        app.topic("v", replication=2, config={MIN: "3"})
    with pytest.raises(ConfigurationError, match="config must be a dict"):
        app.topic("w", config=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="declared twice"):
        app.topic("t", replication=1)
    with pytest.raises(ConfigurationError, match="replication= must be a whole number"):
        settings(replication=0)


@pytest.mark.parametrize("url", ["memory://repl-ignored", "embedded://{tmp}"])
def test_one_machine_brokers_ignore_replication(url: str, tmp_path: object) -> None:
    app = App("one", broker=url.format(tmp=tmp_path), replication=3, min_insync_replicas=2)
    topic = app.topic("t", partitions=2, replication=3, config={MIN: "2"})
    try:
        app.publish(topic, Event(), key="k")
        (info,) = [t for t in app.backend.topics() if t.name == "t"]
        assert (info.partitions, info.replicas, info.under_replicated) == (2, (), ())
    finally:
        app.close()


def test_retry_topics_take_the_settings_of_their_topic() -> None:
    app = App("rt", broker="memory://rt")
    topic = app.topic("t", partitions=2, replication=3, retention=timedelta(days=1))

    @app.consumer(topic, group="g", retry=Retry(keep_order=False))
    def handle(event: Event) -> None: ...

    assert app.topics["t.g.retry"].replication == 3


def test_cluster_script_variables_are_not_librdkafka_properties() -> None:
    env = {
        "TIDINGS_KAFKA_BROKERS": "3",
        "TIDINGS_KAFKA_BROKER_HEAP": "320m",
        "TIDINGS_KAFKA_REPLICATION": "3",
        "TIDINGS_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    loaded = load_settings("h:1", {}, environ=env)
    assert loaded.common == {}
    assert (loaded.replication, loaded.min_insync_replicas) == (3, 2)
