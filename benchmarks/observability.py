"""Consume throughput and CPU per event with metrics (and tracing) on versus off, one process.

    .venv/bin/python -m benchmarks.observability [--broker URL|kafka] [--events N] [--reps R]
        [--modes off,metrics,tracing]

Each rep publishes N events to a fresh topic and has one group consume all of them with an
async no-op handler (the route's fast path), once per mode, modes interleaved (rotated each
rep so drift spreads evenly): nothing listening (`off`), the Prometheus metrics listener
installed (`metrics`), and an OpenTelemetry SDK tracer provider whose span processor drops
every span (`tracing`; `sampled`: the same with a 1% ParentBased(TraceIdRatioBased)
sampler, not run by default), after one uncounted warm-up run. The window runs from the first
handled event to the last, so joining the group is not counted. Reported per mode, as the
median of the reps: events/s and the process's CPU microseconds per event (every thread:
poll thread, event loop, librdkafka), which is robust to a shared machine's load where
events/s is not; then the ratios to `off`.
`--broker kafka` uses the benchmarks' local broker (127.0.0.1:19192, started by
scripts/kafka if it is not running, and stopped afterwards if started here); `make bench`
runs it so, with the default sizes (about a minute and a half with the broker start).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from dataclasses import dataclass

from tidings import App, Event


class Tick(Event):
    n: int
    pad: str


@dataclass
class Run:
    rate: float
    cpu_us: float


def run_once(broker: str, events: int, mode: str) -> Run:
    app = App("obsbench", broker=broker, status_interval=None)
    topic = app.topic(f"obsbench-{uuid.uuid4().hex[:10]}", partitions=4)
    done = threading.Event()
    count = 0
    first: list[tuple[float, float]] = []

    @app.consumer(topic, group=f"g-{uuid.uuid4().hex[:6]}")
    async def handle(e: Tick) -> None:
        nonlocal count
        count += 1
        if count == 1:
            first.append((time.perf_counter(), time.process_time()))
        elif count == events:
            done.set()

    if mode == "metrics":
        from tidings.instrumentation.metrics import install

        install(app.listeners)
    pad = "x" * 200
    for i in range(0, events, 10_000):
        batch = [(str(n % 64), Tick(n=n, pad=pad)) for n in range(i, min(events, i + 10_000))]
        app.publish_many(topic, batch)
    with app.running():
        if not done.wait(600):
            raise SystemExit(f"{mode}: only {count} of {events} handled in 600 s")
        wall, cpu = time.perf_counter(), time.process_time()
    app.close()
    n = events - 1
    return Run(n / (wall - first[0][0]), (cpu - first[0][1]) / n * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default=f"memory://{uuid.uuid4().hex}")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="off,metrics,tracing")
    args = parser.parse_args()
    if args.broker != "kafka":
        measure(args)
        return
    from benchmarks.broker import Broker

    broker = Broker()
    broker.start()
    try:
        args.broker = f"kafka://{broker.bootstrap}"
        measure(args)
    finally:
        broker.stop()


def measure(args: argparse.Namespace) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    modes = args.modes.split(",")
    runs: dict[str, list[Run]] = {m: [] for m in modes}
    providers = {
        "tracing": TracerProvider(),
        "sampled": TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01))),
    }
    for provider in providers.values():
        provider.add_span_processor(SpanProcessor())  # the base class drops every span
    print(f"broker {args.broker.split('://')[0]}, {args.events:,} events, {args.reps} reps")
    run_once(args.broker, min(args.events, 10_000), "off")  # warm-up (broker, imports)
    for rep in range(args.reps):
        for mode in modes[rep % len(modes) :] + modes[: rep % len(modes)]:
            if mode in providers:
                trace._TRACER_PROVIDER = providers[mode]  # only for this run
            try:
                run = run_once(args.broker, args.events, mode)
            finally:
                trace._TRACER_PROVIDER = None
            runs[mode].append(run)
            line = f"  {mode:8s} {run.rate:10,.0f} events/s {run.cpu_us:7.1f} µs CPU/event"
            print(line, flush=True)
    rate = {m: statistics.median(r.rate for r in rs) for m, rs in runs.items()}
    cpu = {m: statistics.median(r.cpu_us for r in rs) for m, rs in runs.items()}
    print(f"median of {args.reps}:")
    for mode in modes:
        line = f"  {mode:8s} {rate[mode]:10,.0f} events/s {cpu[mode]:7.1f} µs CPU/event"
        if mode != "off" and "off" in rate:
            line += (
                f"   throughput {rate[mode] / rate['off']:.2f}x off,"
                f" CPU +{cpu[mode] - cpu['off']:.1f} µs/event"
                f" ({cpu[mode] / cpu['off']:.2f}x)"
            )
        print(line)
    if "off" in rate:
        others = [m for m in modes if m != "off"]
        print(
            "ratios to off (throughput / CPU per event): "
            + ", ".join(
                f"{m} {rate[m] / rate['off']:.2f}x / {cpu[m] / cpu['off']:.2f}x" for m in others
            )
        )


if __name__ == "__main__":
    main()
