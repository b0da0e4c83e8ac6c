"""The local Kafka broker (scripts/kafka on a dedicated port) and topic admin."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.procs import ROOT

SCRIPT = str(Path(ROOT) / "scripts" / "kafka")
DEFAULT_PORT = 19192  # not the developer broker (9092) nor the test broker (19092)


class Broker:
    """One scripts/kafka broker; `stop` only stops it if `start` started it."""

    def __init__(self, port: int = DEFAULT_PORT) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {**os.environ, "TIDINGS_KAFKA_PORT": str(port)}
        self.started = False
        self._admin: AdminClient | None = None

    def _script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SCRIPT, *args], env=self.env, text=True, capture_output=True, check=check
        )

    def running(self) -> bool:
        return self._script("status", check=False).returncode == 0

    def start(self) -> None:
        if self.running():
            return
        done = self._script("start", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/kafka start failed:\n{done.stdout}\n{done.stderr}")
        self.started = True

    def stop(self) -> None:
        if self.started:
            self._script("stop", check=False)
            self.started = False

    def tool_argv(self, cls: str, *args: str) -> list[str]:
        return [SCRIPT, "tool", cls, *args]

    @property
    def pid(self) -> int | None:
        run = Path(self.env.get("TIDINGS_KAFKA_RUN", f"/tmp/tidings-kafka-{self.port}"))
        try:
            return int((run / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def cpu_seconds(self) -> float:
        """The broker JVM's CPU time so far (utime + stime), 0.0 if unknown."""
        pid = self.pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def create_topic(self, name: str, partitions: int) -> None:
        futures = self.admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
        for future in futures.values():
            future.result(timeout=60)
        # Wait until metadata shows every partition with a leader.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = self.admin.list_topics(name, timeout=10).topics.get(name)
            ok = meta is not None and meta.error is None and len(meta.partitions) == partitions
            if ok and all(p.leader >= 0 for p in meta.partitions.values()):
                return
            time.sleep(0.05)
        raise RuntimeError(f"topic {name} has no leaders after 30 s")

    def drop_delay_state(self) -> None:
        """Delete tidings' delay tiers and scheduler group, so a backlog left by one delay
        run (whose target topic is gone) does not hold up the next."""
        prefix, group = delay_names()
        names = [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        self.delete_topics(names)
        for future in self.admin.delete_consumer_groups([group]).values():
            try:
                future.result(timeout=30)
            except Exception:  # no such group, or members still leaving: harmless
                pass

    def delete_topics(self, names: list[str]) -> None:
        if not names:
            return
        for future in self.admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result(timeout=60)
            except Exception:  # a topic that was never created is fine
                pass


def delay_names() -> tuple[str, str]:
    """tidings' delay tier topic prefix and scheduler group (literals if not importable)."""
    try:
        from tidings.backends.kafka.tiers import SCHEDULER_GROUP, TOPIC_PREFIX
    except ImportError:
        return "tidings.delay.", "tidings.scheduler"
    return TOPIC_PREFIX, SCHEDULER_GROUP


def kafka_version() -> str:
    text = Path(SCRIPT).read_text()
    found = re.search(r"KAFKA_VERSION=([0-9.]+)", text)
    return found.group(1) if found else "unknown"
