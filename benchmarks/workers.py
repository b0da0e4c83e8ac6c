"""`python -m benchmarks.workers`: events/s of `tidings run --workers 1` against `--workers 2`.

    python -m benchmarks.workers [--events N] [--only kafka,embedded] [--port P] [--reps R]

Per backend, one topic of 4 partitions is filled once with N ~200-byte events (decode +
validation + a no-op async handler, `benchmarks/workers_app.py`); then `tidings run
--workers 1` and `tidings run --workers 2` each read all of it with a fresh consumer group,
one after the other, in the same run. Handlers wait at a gate until every worker has been
assigned partitions and the group has been quiet for a second (so the second worker's
join is not measured); then a run's rate is taken over the steady middle of the work,
from 20% to 90% of the events committed, from the group's committed offsets polled every
50 ms. With --reps R each count runs R times (alternating) and the median run is shown.
Printed per count: events/s, the CPU the workers (supervisor included)
and the Kafka broker JVM used in that window, in cores; then the ratio 2 workers / 1.
Kafka is the scripts/kafka broker on --port (default 19192: started if not running,
stopped afterwards only if this started it); embedded is a fresh data directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.broker import DEFAULT_PORT, Broker
from benchmarks.workers_app import BenchWorkerTick
from tidings import App
from tidings.backends.registry import open_backend

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) the live processes `pids` used so far."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def family(pid: int) -> list[int]:
    """`pid` and its children (the supervisor and its workers)."""
    out = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def fill(broker: str, topic: str, events: int) -> None:
    app = App("bench-workers-fill", broker=broker, status_interval=None)
    try:
        t = app.topic(topic, partitions=4)
        note = "x" * 150
        for start in range(0, events, 5000):
            app.publish_many(
                t,
                [
                    (f"acct-{i % 1000}", BenchWorkerTick(seq=i, account_id=f"acct-{i}", note=note))
                    for i in range(start, min(events, start + 5000))
                ],
            )
    finally:
        app.close()


class Committed:
    """Reads one group's committed total on `broker` (cheaply: one group only)."""

    def __init__(self, broker: str, group: str, topic: str) -> None:
        self.group, self.topic = group, topic
        self.kafka = broker.startswith("kafka://")
        if self.kafka:
            from confluent_kafka.admin import AdminClient

            self.admin = AdminClient({"bootstrap.servers": broker.removeprefix("kafka://")})
        else:
            self.backend = open_backend(broker, read_only=True)

    def total(self) -> int:
        if self.kafka:
            from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

            request = ConsumerGroupTopicPartitions(
                self.group, [TopicPartition(self.topic, p) for p in range(4)]
            )
            future = self.admin.list_consumer_group_offsets([request])[self.group]
            try:
                result = future.result(timeout=5)
            except Exception:
                return 0
            return sum(max(0, tp.offset) for tp in result.topic_partitions)
        for info in self.backend.groups():
            if info.group == self.group:
                return sum(max(0, p.committed or 0) for p in info.partitions)
        return 0

    def close(self) -> None:
        if not self.kafka:
            self.backend.close()


def wait_joined(log: Path, workers: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once every worker logged an assignment and the group was quiet for 1 s."""
    deadline = time.monotonic() + 120
    last, changed = "", time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tidings run exited:\n{log.read_text()}")
        text = "\n".join(
            line for line in log.read_text().splitlines() if "assigned" in line or "revoked" in line
        )
        if text != last:
            last, changed = text, time.monotonic()
        joined = all(f"[worker {i}] group" in text for i in range(workers))
        if joined and time.monotonic() - changed >= 1.0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the workers did not join within 120 s:\n{log.read_text()}")


def measure(
    broker: str, topic: str, events: int, workers: int, jvm: Broker | None
) -> dict[str, float]:
    group = f"bench-w{workers}-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-workers-run-"))
    gate, log = scratch / "gate", scratch / "log"
    env = {**os.environ, "BW_TOPIC": topic, "BW_GROUP": group, "BW_GATE": str(gate)}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "tidings.cli", "run", "benchmarks.workers_app:app"]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*argv, "--workers", str(workers), "--broker", broker, "--log-format", "plain"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    committed = Committed(broker, group, topic)
    wait_joined(log, workers, proc)
    gate.touch()
    low, high = int(events * 0.2), int(events * 0.9)
    marks: dict[str, tuple[float, int, float, float]] = {}
    started = time.monotonic()
    try:
        while time.monotonic() - started < 300:
            done = committed.total()
            now = time.monotonic()
            for name, at in (("low", low), ("high", high)):
                if name not in marks and done >= at:
                    broker_cpu = jvm.cpu_seconds() if jvm is not None else 0.0
                    marks[name] = (now, done, cpu_of(family(proc.pid)), broker_cpu)
            if done >= events:
                break
            time.sleep(0.05)
        total_time = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(60)
        committed.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if "high" not in marks:
        raise RuntimeError(f"--workers {workers} did not consume {events} events in 300 s")
    (t0, n0, w0, b0), (t1, n1, w1, b1) = marks["low"], marks["high"]
    span = t1 - t0
    return {
        "rate": (n1 - n0) / span,
        "workers_cores": (w1 - w0) / span,
        "broker_cores": (b1 - b0) / span if jvm is not None else 0.0,
        "wall": total_time,
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its CPU figures with it)."""
    return sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--only", default="kafka,embedded")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--reps", type=int, default=1, help="runs of each (1, 2, 1, 2, ...)")
    args = parser.parse_args()
    print(
        f"tidings run --workers 1 vs 2: {args.events:,} events of ~200 B, 4 partitions, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'backend':10} {'workers':>7} {'events/s':>10} {'worker cores':>13} {'broker cores':>13}"
    )
    for backend in args.only.split(","):
        jvm: Broker | None = None
        scratch = tempfile.TemporaryDirectory(prefix="bench-workers-")
        if backend == "kafka":
            jvm = Broker(args.port)
            jvm.start()
            url = f"kafka://{jvm.bootstrap}"
        else:
            url = f"embedded://{scratch.name}/data"
        topic = f"bench-workers-{uuid.uuid4().hex[:8]}"
        try:
            fill(url, topic, args.events)
            runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
            for _ in range(args.reps):
                for n in (1, 2):
                    runs[n].append(measure(url, topic, args.events, n, jvm))
            results = {n: median_run(r) for n, r in runs.items()}
        finally:
            if jvm is not None:
                jvm.delete_topics([topic])
                jvm.stop()
            scratch.cleanup()
        for n, r in results.items():
            broker_cores = f"{r['broker_cores']:.2f}" if jvm is not None else "(in-process)"
            print(
                f"{backend:10} {n:>7} {r['rate']:>10,.0f} {r['workers_cores']:>13.2f} "
                f"{broker_cores:>13}"
            )
        print(
            f"{backend:10} ratio 2/1: {results[2]['rate'] / results[1]['rate']:.2f}x "
            "(target >= 1.6x on 2 cores)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
