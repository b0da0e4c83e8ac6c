"""A real three-broker Kafka cluster (scripts/kafka --brokers 3) for the failover tests.

The cluster is started once per session on its own ports (base `TIDINGS_CLUSTER_PORT`,
default 29092: brokers 29092-29094, controller 29192) and stopped at the end if this
session started it. Without Java the tests skip; with TIDINGS_REQUIRE_KAFKA=1 they fail.
Each test starts with every broker up (brokers a previous test left down are restarted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.backends.kafka.admin import KafkaAdmin
from tidings.backends.kafka.config import load_settings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka"
BROKERS = 3


class Cluster:
    """Drive the cluster's brokers: who leads what, SIGKILL one, start it again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.env = {**os.environ, "TIDINGS_KAFKA_PORT": str(port)}
        self.env.pop("TIDINGS_KAFKA_RUN", None)
        self.env.pop("TIDINGS_KAFKA_CONTROLLER_PORT", None)
        self.bootstrap = ",".join(f"127.0.0.1:{port + i}" for i in range(BROKERS))
        self.url = f"kafka://{self.bootstrap}"
        self.down: set[int] = set()

    def script(self, *args: str, timeout: float = 150) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args, "--brokers", str(BROKERS)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode not in (0, 3):
            raise AssertionError(f"scripts/kafka {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def running(self) -> bool:
        return all(" running " in line for line in self.script("status").splitlines())

    def kill(self, node: int) -> None:
        """SIGKILL broker `node` (1..3)."""
        self.script("kill", str(node))
        self.down.add(node)

    def restart(self, node: int) -> float:
        """Start broker `node` again on its data; return the seconds it took to be ready."""
        t0 = time.monotonic()
        self.script("restart", str(node))
        self.down.discard(node)
        return time.monotonic() - t0

    def heal(self) -> None:
        """Bring every broker back and wait until every partition is fully in sync."""
        for node in sorted(self.down):
            self.restart(node)
        admin = self.admin()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            md = admin.metadata()
            if len(md.brokers) == BROKERS and all(
                len(p.isrs) == len(p.replicas)
                for t in md.topics.values()
                for p in t.partitions.values()
            ):
                return
            time.sleep(0.2)
        raise AssertionError("the cluster did not get back in sync within 60 s")

    def admin(self) -> KafkaAdmin:
        return KafkaAdmin(load_settings(self.bootstrap, {}, environ={}))

    def leaders(self, topic: str) -> Counter[int]:
        """How many partitions of `topic` each broker leads."""
        md = self.admin().metadata(topic)
        return Counter(p.leader for p in md.topics[topic].partitions.values())

    def coordinators(self, groups: list[str]) -> dict[str, int]:
        """The broker id coordinating each group."""
        admin = self.admin()
        futures = admin.client.describe_consumer_groups(groups, request_timeout=10)
        return {g: f.result(timeout=15).coordinator.id for g, f in futures.items()}

    def node_of(self, broker_id: int) -> int:
        return broker_id  # scripts/kafka gives broker i node id i


def _start(cluster: Cluster) -> bool:
    """Start the cluster unless it runs; return whether this session started it."""
    if cluster.running():
        return False
    reason = ""
    if shutil.which("java") is None:
        reason = "java not found (the cluster tests need Java 17+ and Maven, like scripts/kafka)"
    else:
        try:
            cluster.script("start", timeout=240)
            return True
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            reason = f"the 3-broker cluster did not start: {exc}"
    if os.environ.get("TIDINGS_REQUIRE_KAFKA") == "1":
        pytest.fail(f"TIDINGS_REQUIRE_KAFKA=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def kafka_cluster() -> Iterator[Cluster]:
    cluster = Cluster(int(os.environ.get("TIDINGS_CLUSTER_PORT", "29092")))
    started = _start(cluster)
    try:
        yield cluster
    finally:
        if started:
            cluster.script("stop")


@pytest.fixture
def cluster(kafka_cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster with all brokers up; brokers a test killed are restarted after."""
    kafka_cluster.heal()
    yield kafka_cluster
    for node in sorted(kafka_cluster.down):
        kafka_cluster.restart(node)
