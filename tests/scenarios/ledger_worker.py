"""A worker process for crash tests: handles Tick events and writes a ledger line per delivery.

Environment: TIDINGS_BROKER (broker URL), LEDGER_DIR, TOPIC, GROUPS (comma-separated),
HANDLER_SLEEP (seconds per event, default 0). The ledger line is written (unbuffered)
before the handler returns, so every committed event is in some ledger.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from tidings import App, Context, Event


class Tick(Event):
    key: str
    seq: int


def build() -> App:
    app = App("ledger", grace=5.0, max_in_flight=int(os.environ.get("MAX_IN_FLIGHT", "10000")))
    topic = app.topic(os.environ["TOPIC"], partitions=3)
    ledger = os.open(
        os.path.join(os.environ["LEDGER_DIR"], f"ledger-{os.getpid()}.log"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    )
    pause = float(os.environ.get("HANDLER_SLEEP", "0"))

    def make(group: str) -> None:
        @app.consumer(topic, group=group)
        def handle(e: Tick, ctx: Context) -> None:
            if pause:
                time.sleep(pause)
            line = f"{group} {e.key} {e.seq} {time.time_ns()} {ctx.partition} {ctx.offset}\n"
            os.write(ledger, line.encode())

    for group in os.environ["GROUPS"].split(","):
        make(group)
    return app


def worker_env(url: str, ledger_dir: Path, topic: str, **extra: str) -> dict[str, str]:
    """Return the environment for ledger workers on broker `url` (fast Kafka group timeouts)."""
    env = dict(os.environ)
    if url.startswith("kafka://"):
        env["TIDINGS_KAFKA_SESSION_TIMEOUT_MS"] = "6000"
        env["TIDINGS_KAFKA_HEARTBEAT_INTERVAL_MS"] = "1000"
    env.update(
        TIDINGS_BROKER=url,
        LEDGER_DIR=str(ledger_dir),
        TOPIC=topic,
        PYTHONPATH=os.getcwd(),
        **extra,
    )
    return env


def read_ledgers(path: Path) -> list[tuple[str, str, int, int]]:
    """Return (group, key, seq, time_ns) for every complete ledger line under `path`."""
    rows = []
    for file in path.glob("ledger-*.log"):
        for line in file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:  # a line cut by SIGKILL is incomplete, not a delivery
                rows.append((parts[0], parts[1], int(parts[2]), int(parts[3])))
    return rows


def check_group(rows: list[tuple[str, str, int, int]], group: str, events: int) -> int:
    """Assert `group` handled every event and, per key, first deliveries in publish order.

    Returns the number of duplicate deliveries.
    """
    mine = [r for r in rows if r[0] == group]
    seqs = [r[2] for r in mine]
    assert set(seqs) == set(range(events)), f"{group} lost events"
    first: dict[int, tuple[int, str]] = {}
    for _, key, seq, at in sorted(mine, key=lambda r: r[3]):
        first.setdefault(seq, (at, key))
    by_key: dict[str, list[int]] = defaultdict(list)
    for seq, (_, key) in sorted(first.items(), key=lambda kv: kv[1][0]):
        by_key[key].append(seq)
    for key, order in by_key.items():
        assert order == sorted(order), f"{group}: key {key} first deliveries out of order"
    return len(seqs) - events


if __name__ == "__main__":
    build().run()
