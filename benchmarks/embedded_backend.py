"""Raw seam-level throughput of the embedded backend (no runtime, no wire codec).

Measures, on a fresh store in a temporary directory:

- produce, batched: `produce()` with batches of `--batch` records of `--size` bytes;
- produce, single: one record per `produce()` call (one transaction each);
- fetch: a group member reading everything back with `fetch(--fetch-max)`, committing each batch;
- end-to-end latency: a producer thread at `--rate` records/s, a consumer in this process;
  p50/p99 of (fetched at - produced at).

Run: ``.venv/bin/python benchmarks/embedded_backend.py`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tidings.backends.embedded import EmbeddedBackend
from tidings.records import OutgoingRecord, TopicSpec

HEADERS = (
    ("ce_specversion", b"1.0"),
    ("ce_id", b"0f8e8f3a-0b8e-4c55-9a55-1234567890ab"),
    ("ce_source", b"accounts"),
    ("ce_type", b"AccountBanned"),
    ("ce_time", b"2024-01-01T00:00:00.000000Z"),
    ("content-type", b"application/json"),
)


def records(topic: str, n: int, size: int, offset: int = 0) -> list[OutgoingRecord]:
    value = os.urandom(size // 2).hex().encode()[:size]
    return [
        OutgoingRecord(topic, f"account-{(offset + i) % 1000}".encode(), value, HEADERS)
        for i in range(n)
    ]


class Rate:
    """Events per second of wall time and per second of this process's CPU time.

    On a shared machine the CPU figure is the steadier one: it ignores time spent waiting
    for other processes to get off the cores.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def of(self, n: int) -> tuple[float, float]:
        return n / (time.perf_counter() - self.wall), n / (time.process_time() - self.cpu)


def bench_produce_batch(b: EmbeddedBackend, n: int, size: int, batch: int) -> tuple[float, float]:
    recs = records("batch", n, size)
    rate = Rate()
    for i in range(0, n, batch):
        b.produce(recs[i : i + batch])
    return rate.of(n)


def bench_produce_single(b: EmbeddedBackend, n: int, size: int) -> tuple[float, float]:
    recs = records("single", n, size)
    rate = Rate()
    for rec in recs:
        b.produce([rec])
    return rate.of(n)


def bench_fetch(b: EmbeddedBackend, n: int, fetch_max: int) -> tuple[float, float]:
    consumer = b.open_consumer("bench", ["batch"], start="earliest", listener=None)
    got = 0
    rate = Rate()
    while got < n:
        recs = consumer.fetch(fetch_max, 1.0)
        if not recs:
            break
        got += len(recs)
        last: dict = {}
        for r in recs:
            last[r.tp] = r.offset + 1
        consumer.commit(last, sync=True)
    result = rate.of(got)
    consumer.close()
    return result


def bench_latency(b: EmbeddedBackend, rate: int, seconds: float, size: int) -> tuple[float, float]:
    b.ensure_topics([TopicSpec("latency", partitions=3)])
    consumer = b.open_consumer("lat", ["latency"], start="latest", listener=None)
    consumer.fetch(100, 0.2)  # join and take the partitions before producing
    total = int(rate * seconds)
    value = b"x" * size
    latencies: list[float] = []

    def produce() -> None:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for i in range(total):
            stamp = repr(time.perf_counter()).encode()
            b.produce([OutgoingRecord("latency", str(i).encode(), value, (("t", stamp),))])
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    thread = threading.Thread(target=produce)
    thread.start()
    while len(latencies) < total:
        recs = consumer.fetch(500, 2.0)
        now = time.perf_counter()
        if not recs and not thread.is_alive():
            break
        latencies.extend(now - float(r.header("t") or b"0") for r in recs)
    thread.join()
    consumer.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return statistics.median(latencies) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="records for the batch/fetch runs")
    parser.add_argument("--single", type=int, default=20_000, help="records produced one by one")
    parser.add_argument("--size", type=int, default=1024, help="value size in bytes")
    parser.add_argument("--batch", type=int, default=1000, help="records per produce() call")
    parser.add_argument("--fetch-max", type=int, default=1000, help="max_records per fetch()")
    parser.add_argument("--rate", type=int, default=1000, help="records/s for the latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the latency run")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--synchronous", default="NORMAL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        b = EmbeddedBackend(path, url=f"embedded://{path}", synchronous=args.synchronous)
        b.ensure_topics([TopicSpec("batch", args.partitions), TopicSpec("single", args.partitions)])
        rates = [
            ("produce batch", bench_produce_batch(b, args.n, args.size, args.batch)),
            ("produce single", bench_produce_single(b, args.single, args.size)),
            ("fetch + commit", bench_fetch(b, args.n, args.fetch_max)),
        ]
        p50, p99 = bench_latency(b, args.rate, args.seconds, args.size)
        b.close()
    print(
        f"embedded backend: {args.size} B values, batches of {args.batch}, "
        f"synchronous={args.synchronous}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'':<16} {'events/s':>12} {'per CPU-s':>12}")
    for name, (wall, cpu) in rates:
        print(f"  {name:<16} {wall:>12,.0f} {cpu:>12,.0f}")
    print(f"  end-to-end latency at {args.rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
