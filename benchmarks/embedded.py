"""Embedded backend throughput and latency, through the public API.

    python -m benchmarks.embedded [--events 100000] [--size 1000]

Prints events/s for one-at-a-time publish, the fast publish_many path, consuming with
decode + validation + a no-op async handler, and end-to-end p50/p99 latency at a steady
1,000 events/s. Each figure is measured on a fresh data directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.workload import AccountEvent as AccountUpdated
from tidings import App


def make(i: int, size: int) -> AccountUpdated:
    return AccountUpdated(
        account_id=f"acct-{i % 10_000}",
        seq=i,
        sent_ns=time.time_ns(),
        plan="pro",
        country="NL",
        email=f"user{i}@example.com",
        balance_cents=i * 7,
        status="active",
        tags=["a", "b"],
        note="x" * max(0, size - 220),
    )


def fresh_app(root: Path, name: str) -> tuple[App, object]:
    app = App("bench", broker=f"embedded://{root / name}")
    topic = app.topic("bench", partitions=6)
    return app, topic


def bench_publish_single(root: Path, n: int, size: int) -> float:
    app, topic = fresh_app(root, "single")
    events = [make(i, size) for i in range(n)]
    t0 = time.perf_counter()
    for e in events:
        app.publish(topic, e, key=e.account_id)  # type: ignore[arg-type]
    dt = time.perf_counter() - t0
    app.close()
    return n / dt


def bench_publish_many(root: Path, n: int, size: int, chunk: int = 5_000) -> tuple[float, App]:
    app, topic = fresh_app(root, "many")
    events = [(f"acct-{i % 10_000}", make(i, size)) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, chunk):
        app.publish_many(topic, events[i : i + chunk])  # type: ignore[arg-type]
    dt = time.perf_counter() - t0
    return n / dt, app


def bench_consume(app: App, n: int) -> float:
    done = threading.Event()
    count = 0

    @app.consumer("bench", group="noop")
    async def noop(e: AccountUpdated) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    t0 = time.perf_counter()
    with app.running():
        done.wait(600)
        dt = time.perf_counter() - t0
    app.close()
    return n / dt


def bench_latency(root: Path, seconds: float, rate: int, size: int) -> tuple[float, float, float]:
    app, topic = fresh_app(root, "latency")
    lat: list[float] = []

    @app.consumer(topic, group="latency")  # type: ignore[arg-type]
    async def measure(e: AccountUpdated) -> None:
        lat.append((time.time_ns() - e.sent_ns) / 1e6)

    total = int(seconds * rate)
    with app.running():
        time.sleep(0.5)
        start = time.perf_counter()
        for i in range(total):
            target = start + i / rate
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            app.publish(topic, make(i, size), key=f"acct-{i % 10_000}")  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while len(lat) < total and time.monotonic() < deadline:
            time.sleep(0.01)
    app.close()
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    return q[49], q[98], lat[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        root = Path(tmp)
        single = bench_publish_single(root, args.single, args.size)
        many, app = bench_publish_many(root, args.events, args.size)
        consume = bench_consume(app, args.events)
        p50, p99, worst = bench_latency(root, args.latency_seconds, 1_000, args.size)
    print(f"embedded backend, {args.size}-byte events, 6 partitions")
    print(f"  publish one at a time : {single:>10,.0f} events/s  (target >= 10,000)")
    print(f"  publish_many          : {many:>10,.0f} events/s  (target >= 100,000)")
    print(f"  consume (no-op async) : {consume:>10,.0f} events/s  (target >= 50,000)")
    print(
        f"  end-to-end @1000/s    : p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms"
        "  (target p99 <= 25 ms)"
    )


if __name__ == "__main__":
    main()
