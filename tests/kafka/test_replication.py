"""Replication settings against the single-broker test cluster."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tidings import App, ConfigurationError, Event
from tidings.backends.kafka import KafkaBackend
from tidings.cli import app as cli_app
from tidings.records import TopicSpec

pytestmark = pytest.mark.kafka


class ReplPing(Event):
    n: int


def test_more_replicas_than_brokers_fails_at_startup(bootstrap: str, topic_name: str) -> None:
    app = App("repl", broker=f"kafka://{bootstrap}")
    topic = app.topic(topic_name, replication=3, config={"min.insync.replicas": "2"})
    try:
        with pytest.raises(ConfigurationError) as failed:
            app.publish(topic, ReplPing(n=1))
        assert f"Topic {topic_name!r} needs replication=3" in str(failed.value)
        assert "has 1 live broker(s)" in str(failed.value)
    finally:
        app.close()
    app = App("repl", broker=f"kafka://{bootstrap}", replication=3)
    app.topic(topic_name)
    try:
        with pytest.raises(ConfigurationError, match="needs replication=3"):
            app.backend  # noqa: B018 - opening the backend declares the topics
    finally:
        app.close()


def test_declared_settings_reach_the_topic_and_are_described(
    backend: KafkaBackend, topic_name: str
) -> None:
    backend.ensure_topics(
        [
            TopicSpec(
                topic_name, 2, None, 1, (("min.insync.replicas", "1"), ("segment.ms", "3600000"))
            )
        ]
    )
    (info,) = [t for t in backend.topics() if t.name == topic_name]
    assert (info.leaders, info.replicas, info.in_sync) == ((1, 1), ((1,), (1,)), ((1,), (1,)))
    assert (info.min_insync, info.under_replicated) == (1, ())
    configs = backend._admin.topic_configs([topic_name])[topic_name]
    assert configs["segment.ms"].value == "3600000"

    other = KafkaBackend(backend.settings.servers, url=backend.url, delays=False)
    try:
        with pytest.raises(ConfigurationError, match=r"exists on .* with 1 replica\(s\)"):
            other.ensure_topics([TopicSpec(topic_name, 2, None, 2)])
    finally:
        other.close()

    runner = CliRunner(env={"COLUMNS": "240"})
    text = runner.invoke(cli_app, ["topics", "describe", topic_name, "--broker", backend.url])
    assert text.exit_code == 0, text.output
    assert "leader" in text.stdout and "in sync" in text.stdout
    assert "replication 1, min.insync.replicas 1" in text.stdout
    listed = runner.invoke(cli_app, ["topics", "list", "--broker", backend.url])
    assert "under-replicated" in listed.stdout
