"""`tidings topics list / describe` on a cluster: replicas, in-sync replicas, leaders."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import Cluster
from tests.helpers import wait_until
from tidings.cli import app as cli_app

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]


def test_topics_show_replicas_and_flag_under_replicated_partitions(
    cluster: Cluster, topic_name: str
) -> None:
    runner = CliRunner(env={"COLUMNS": "240"})

    def tidings(*args: str) -> tuple[str, str]:
        result = runner.invoke(cli_app, [*args, "--broker", cluster.url])
        assert result.exit_code == 0, result.output
        return result.stdout, result.stderr

    tidings("topics", "create", topic_name, "--partitions", "3", "--replication", "3")
    (info,) = [
        t for t in json.loads(tidings("topics", "list", "--json")[0]) if t["name"] == topic_name
    ]
    assert info["replication"] == 3 and info["under_replicated_partitions"] == []
    assert info["min_insync_replicas"] == 2  # tidings' rule for 3 replicas

    cluster.kill(2)

    admin = cluster.admin()

    def shrunk() -> bool:
        partitions = admin.metadata(topic_name).topics[topic_name].partitions.values()
        return all(sorted(p.isrs) == [1, 3] for p in partitions)

    wait_until(shrunk, 30, "broker 2 fenced and dropped from every in-sync replica set")
    (info,) = [
        t for t in json.loads(tidings("topics", "list", "--json")[0]) if t["name"] == topic_name
    ]
    assert info["under_replicated_partitions"] == [0, 1, 2]
    assert info["in_sync_replicas"] == [[1, 3], [1, 3], [1, 3]]
    assert 2 not in info["leaders"]
    table, warning = tidings("topics", "list")
    assert "under-replicated" in table
    assert f"Topic {topic_name!r} has under-replicated partitions: 0 (2/3 in sync)" in " ".join(
        warning.split()
    )
    described, _ = tidings("topics", "describe", topic_name)
    assert "replication 3, min.insync.replicas 2" in described
    assert "1,2,3" in described and "1,3" in described  # replicas, then in sync
