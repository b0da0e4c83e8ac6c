"""`python -m benchmarks.exactly_once`: the cost of `exactly_once=True`, same run, same broker.

    python -m benchmarks.exactly_once [--events N] [--latency-seconds S] [--rate R]
                                      [--brokers kafka,embedded]

A consume-transform-produce group (in -> out, 3 partitions, 1 KB events, default settings:
one event at a time per partition, an async handler that `ctx.publish`es one follow-up)
runs with and without `exactly_once=True`:

- throughput: N events are published first, then the group is started; events/s is N over
  the time until the group's committed offsets reach the end of `in` (outputs written); at
  the defaults, and again with `concurrency=50` (100 keys), where at least once is not held
  back by awaiting each follow-up's durable publish before the next event;
- latency: events are published at R/s for S seconds while the group runs; a read_committed
  reader of `out` times each output against its input's publish time (p50/p99).

Kafka is the broker at $TIDINGS_KAFKA_PORT (19092); embedded uses a scratch directory. The
issue's target: exactly once costs at most 30% of the events/s (ratio >= 0.70).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
import uuid
from typing import Any

from tidings import App, Context, Event

PAD = "x" * 1000  # with the other fields, ~1 KB of JSON per event


class Tick(Event):
    seq: int
    at: float
    pad: str = ""


class Tock(Event):
    seq: int
    at: float
    pad: str = ""


def kafka_url() -> str | None:
    port = int(os.environ.get("TIDINGS_KAFKA_PORT", "19092"))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return None
    return f"kafka://127.0.0.1:{port}"


def build(
    url: str, exactly_once: bool, tag: str, concurrency: int | None = None
) -> tuple[App, str, str]:
    app = App("bench-eos", broker=url, status_interval=None)
    src = app.topic(f"bench-eos-in-{tag}", partitions=3)
    out = app.topic(f"bench-eos-out-{tag}", partitions=3)

    @app.consumer(src, group=f"bench-eos-{tag}", exactly_once=exactly_once, concurrency=concurrency)
    async def transform(e: Tick, ctx: Context) -> None:
        await ctx.publish_async(out, Tock(seq=e.seq, at=e.at, pad=e.pad), key=ctx.key)

    app.backend.ensure_topics(list(app.topics.values()))
    return app, src.name, out.name


def committed(app: App, group: str, topic: str) -> int:
    return sum(
        p.committed or 0
        for g in app.backend.groups()
        if g.group == group
        for p in g.partitions
        if p.topic == topic
    )


def throughput(url: str, exactly_once: bool, events: int, concurrency: int | None = None) -> float:
    tag = uuid.uuid4().hex[:8]
    app, src, _ = build(url, exactly_once, tag, concurrency)
    try:
        for start in range(0, events, 1000):
            app.publish_many(
                src,
                [
                    (f"k{i % 100}", Tick(seq=i, at=0.0, pad=PAD))
                    for i in range(start, min(events, start + 1000))
                ],
            )
        t0 = time.perf_counter()
        with app.running():
            deadline = time.monotonic() + 600
            while committed(app, f"bench-eos-{tag}", src) < events:
                if time.monotonic() > deadline:
                    raise RuntimeError("the group did not finish within 600 s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
    finally:
        app.close()
    return events / elapsed


def latency(url: str, exactly_once: bool, seconds: float, rate: float) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    app, src, out = build(url, exactly_once, tag)
    arrivals: list[float] = []
    stop = threading.Event()
    try:
        reader = app.backend.open_consumer(None, [out], start="latest", listener=None)
        reader.fetch(1, 0.5)

        def read() -> None:
            while not stop.is_set():
                records = reader.fetch(1000, 0.05)
                now = time.time()
                arrivals.extend(now - Tock.model_validate_json(r.value or b"").at for r in records)

        thread = threading.Thread(target=read)
        thread.start()
        count = int(seconds * rate)
        with app.running():
            time.sleep(2.0)  # joined and assigned before the clock starts
            t0 = time.perf_counter()
            for i in range(count):
                wait = t0 + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                app.publish(src, Tick(seq=i, at=time.time(), pad=PAD), key=f"k{i % 100}")
            deadline = time.monotonic() + 30
            while len(arrivals) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        stop.set()
        thread.join()
        reader.close()
    finally:
        stop.set()
        app.close()
    arrivals.sort()
    if not arrivals:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": arrivals[len(arrivals) // 2] * 1000,
        "p99_ms": arrivals[min(len(arrivals) - 1, int(len(arrivals) * 0.99))] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.exactly_once", description=__doc__)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=500.0, help="events/s in the latency phase")
    p.add_argument("--brokers", default="kafka,embedded")
    a = p.parse_args(argv)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in a.brokers.split(","):
            url = kafka_url() if kind == "kafka" else f"embedded://{scratch}/data"
            if url is None:
                print("skipping kafka: no broker at $TIDINGS_KAFKA_PORT (scripts/kafka start)")
                continue
            for eos in (False, True):
                row: dict[str, Any] = {"events_per_s": throughput(url, eos, a.events)}
                row.update(latency(url, eos, a.latency_seconds, a.rate))
                row["events_per_s_c50"] = throughput(url, eos, a.events, concurrency=50)
                results.setdefault(kind, {})["exactly_once" if eos else "at_least_once"] = row
    print(
        f"consume-transform-produce, 1 KB events, {a.events:,} events; latency at "
        f"{a.rate:,.0f}/s for {a.latency_seconds:.0f} s"
    )
    print(
        f"{'broker':10} {'mode':14} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'events/s, concurrency=50':>25}"
    )
    for kind, modes in results.items():
        for mode, row in modes.items():
            print(
                f"{kind:10} {mode:14} {row['events_per_s']:10,.0f} "
                f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['events_per_s_c50']:25,.0f}"
            )
        eos, alo = modes["exactly_once"], modes["at_least_once"]
        for label, field in (("defaults", "events_per_s"), ("concurrency=50", "events_per_s_c50")):
            ratio = eos[field] / alo[field]
            verdict = "meets" if ratio >= 0.7 else "MISSES"
            print(
                f"{kind:10} exactly_once/at_least_once events/s ({label}) = {ratio:.2f} "
                f"({verdict} >= 0.70)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
