"""Consume throughput with the metrics listener (and tracing) on versus off, in one process.

    .venv/bin/python -m benchmarks.observability [--broker URL] [--events N] [--reps R]
        [--modes off,metrics,tracing]

Each rep publishes N events to a fresh topic and times one group consuming all of them with
an async handler (the route's fast path), three ways in turn: nothing listening, the
Prometheus metrics listener installed, and an OpenTelemetry SDK tracer provider with a
span processor that drops spans. Prints events/s (best of the reps) and the ratios. The
`make bench` scenario will come later; this is a quick in-process figure.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

from tidings import App, Event


class Tick(Event):
    n: int
    pad: str


def run_once(broker: str, events: int, mode: str) -> float:
    app = App("obsbench", broker=broker)
    topic = app.topic(f"obsbench-{uuid.uuid4().hex[:10]}", partitions=4)
    done = threading.Event()
    count = 0

    @app.consumer(topic, group=f"g-{uuid.uuid4().hex[:6]}")
    async def handle(e: Tick) -> None:
        nonlocal count
        count += 1
        if count == events:
            done.set()

    if mode == "metrics":
        from tidings.instrumentation.metrics import install

        install(app.listeners)
    pad = "x" * 200
    for i in range(0, events, 10_000):
        batch = [(str(n % 64), Tick(n=n, pad=pad)) for n in range(i, min(events, i + 10_000))]
        app.publish_many(topic, batch)
    started = time.perf_counter()
    with app.running():
        if not done.wait(600):
            raise SystemExit(f"{mode}: only {count} of {events} handled in 600 s")
        elapsed = time.perf_counter() - started
    app.close()
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default=f"memory://{uuid.uuid4().hex}")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="off,metrics,tracing")
    args = parser.parse_args()
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    best: dict[str, float] = {}
    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())  # the base class drops every span
    for _ in range(args.reps):
        for mode in args.modes.split(","):
            if mode == "tracing":
                trace._TRACER_PROVIDER = provider  # only for this run
            rate = run_once(args.broker, args.events, mode)
            trace._TRACER_PROVIDER = None
            best[mode] = max(best.get(mode, 0.0), rate)
            print(f"{mode:8s} {rate:12,.0f} events/s", flush=True)
    print(f"best of {args.reps}: " + ", ".join(f"{m} {r:,.0f}/s" for m, r in best.items()))
    for mode in ("metrics", "tracing"):
        if mode in best:
            print(f"{mode} on / off: {best[mode] / best['off']:.3f}")


if __name__ == "__main__":
    main()
