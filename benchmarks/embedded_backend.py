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


def bench_produce_batch(b: EmbeddedBackend, n: int, size: int, batch: int) -> float:
    recs = records("batch", n, size)
    start = time.perf_counter()
    for i in range(0, n, batch):
        b.produce(recs[i : i + batch])
    return n / (time.perf_counter() - start)


def bench_produce_single(b: EmbeddedBackend, n: int, size: int) -> float:
    recs = records("single", n, size)
    start = time.perf_counter()
    for rec in recs:
        b.produce([rec])
    return n / (time.perf_counter() - start)


def bench_fetch(b: EmbeddedBackend, n: int, fetch_max: int) -> float:
    consumer = b.open_consumer("bench", ["batch"], start="earliest", listener=None)
    got = 0
    start = time.perf_counter()
    while got < n:
        recs = consumer.fetch(fetch_max, 1.0)
        if not recs:
            break
        got += len(recs)
        last: dict = {}
        for r in recs:
            last[r.tp] = r.offset + 1
        consumer.commit(last, sync=True)
    elapsed = time.perf_counter() - start
    consumer.close()
    return got / elapsed


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
        rows = [
            ("produce batch", bench_produce_batch(b, args.n, args.size, args.batch), "events/s"),
            ("produce single", bench_produce_single(b, args.single, args.size), "events/s"),
            ("fetch + commit", bench_fetch(b, args.n, args.fetch_max), "events/s"),
        ]
        p50, p99 = bench_latency(b, args.rate, args.seconds, args.size)
        rows += [("end-to-end p50", p50, "ms"), ("end-to-end p99", p99, "ms")]
        b.close()
    print(f"embedded backend, {args.size} B values, synchronous={args.synchronous}")
    for name, value, unit in rows:
        print(f"  {name:<16} {value:>12,.1f} {unit}")


if __name__ == "__main__":
    main()
