"""The dashboard under load, and what status reports cost a worker.

    .venv/bin/python -m benchmarks.dashboard [--broker URL] [--groups 50] [--partitions 10]
                                             [--workers 20] [--requests 200]

1. Overview latency: `--groups` topics of `--partitions` partitions (50 x 10 = 500 by
   default), one group per topic with some lag, and `--workers` fake workers publishing
   snapshots (each reporting every group, with in-flight events). It starts a Dashboard,
   waits for its first sample, and times `--requests` GETs of /api/overview and of a group
   page; prints p50/p99/max and the sampler's time per sample.
2. Reporter cost: a real runner with 4 groups; times StatusReporter.publish() (build the
   snapshot, encode, produce) and prints its CPU share at the default 5 s interval. With
   `--cpu-seconds S`, also measures an idle 4-group worker's process CPU for S seconds
   with status reports (and the control topic it follows) off and on, twice each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tidings import App, Event
from tidings.backends.base import Backend
from tidings.backends.registry import open_backend
from tidings.dashboard import Dashboard
from tidings.records import OutgoingRecord, TopicPartition, TopicSpec
from tidings.runtime import status as st


class BenchPing(Event):
    n: int


def _fill(backend: Backend, groups: int, partitions: int, tag: str) -> list[str]:
    names = [f"bench-{tag}-{i:02d}" for i in range(groups)]
    backend.ensure_topics([TopicSpec(name=n, partitions=partitions) for n in names])
    records = [
        OutgoingRecord(n, b"k", b'{"n":1}', partition=p)
        for n in names
        for p in range(partitions)
        for _ in range(4)
    ]
    backend.produce(records)
    for i, name in enumerate(names):
        handle = backend.open_consumer(
            f"bench-{tag}-g{i:02d}", [name], start="earliest", listener=None
        )
        deadline = time.monotonic() + 30
        while len(handle.assignment()) < partitions and time.monotonic() < deadline:
            handle.fetch(1, 0.1)
        lagging = {TopicPartition(name, p): 2 if p % 2 else 4 for p in range(partitions)}
        handle.commit(lagging, sync=True)
        handle.close()
    return names


def _snapshots(backend: Backend, names: list[str], workers: int, partitions: int, tag: str) -> None:
    now = time.time()
    out = []
    for w in range(workers):
        groups = []
        for i, name in enumerate(names):
            mine = [p for p in range(partitions) if p % workers == w % partitions]
            groups.append(
                {
                    "group": f"bench-{tag}-g{i:02d}",
                    "topics": [name],
                    "assigned": [[name, p] for p in mine],
                    "stopped": [],
                    "paused": [],
                    "backpressure": False,
                    "in_flight": 3,
                    "in_flight_bytes": 300,
                    "running_handlers": 1,
                    "received": 1000,
                    "handled": 990,
                    "skipped": 0,
                    "failed": 4,
                    "retried": 3,
                    "dead_lettered": 1,
                    "oldest": None,
                    "in_flight_events": [
                        {
                            "topic": name,
                            "partition": p,
                            "offset": 2,
                            "key": "k",
                            "age": 1.5,
                            "in_flight": 2,
                            "running": 1,
                        }
                        for p in mine[:3]
                    ],
                }
            )
        snap = {
            "schema": 1,
            "worker": f"bench:{w}:{tag}",
            "host": "bench",
            "pid": w,
            "app": "bench",
            "version": "0",
            "state": "running",
            "time": now,
            "started": now,
            "interval": 3600.0,
            "groups": groups,
        }
        out.append(
            OutgoingRecord(
                st.STATUS_TOPIC, snap["worker"].encode(), json.dumps(snap).encode(), partition=0
            )
        )
    backend.ensure_topics([st.STATUS_SPEC])
    backend.produce(out)


def _time_get(url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as res:
            res.read()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _fmt(times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms, max {times[-1]:.1f} ms"


def overview_latency(broker: str, groups: int, partitions: int, workers: int, n: int) -> None:
    tag = uuid.uuid4().hex[:6]
    backend = open_backend(broker)
    try:
        names = _fill(backend, groups, partitions, tag)
        _snapshots(backend, names, workers, partitions, tag)
        dash = Dashboard(backend, port=0, interval=2.0)
        with dash:
            sample = dash.monitor.latest(120)
            deadline = time.monotonic() + 60
            while len(sample.workers) < workers and time.monotonic() < deadline:
                time.sleep(0.5)
                sample = dash.monitor.refresh()
            mine = [g for g in sample.groups if g.startswith(f"bench-{tag}")]
            print(
                f"{len(mine)} groups, {sum(len(sample.groups[g].partitions) for g in mine)} "
                f"partitions, {len(sample.workers)} workers reporting"
            )
            took = [dash.monitor.refresh().took * 1000 for _ in range(5)]
            print(f"sampling the broker (background thread): {_fmt(took)}")
            body = urllib.request.urlopen(dash.url + "api/overview", timeout=30).read()
            overview = _fmt(_time_get(dash.url + "api/overview", n))
            print(f"GET /api/overview ({len(body) / 1024:.0f} KiB): {overview}")
            page = dash.url + f"api/groups/{mine[0]}"
            print(f"GET /api/groups/<g>: {_fmt(_time_get(page, n))}")
    finally:
        backend.close()


def reporter_cost(broker: str, n: int) -> None:
    app = App("bench-status", broker=broker, status_interval=None)
    tag = uuid.uuid4().hex[:6]
    topic = app.topic(f"bench-status-{tag}", partitions=6)
    for g in range(4):

        @app.consumer(topic, group=f"bench-status-{tag}-{g}")
        async def handle(event: BenchPing) -> None:
            pass

    app.publish_many(topic, [(str(i), BenchPing(n=i)) for i in range(2000)])
    try:
        with app.running() as runner:
            reporter = st.StatusReporter(app.backend, app.name)
            reporter._workers = runner.workers
            app.backend.ensure_topics([st.STATUS_SPEC])
            reporter.publish()
            wall, cpu = [], []
            for _ in range(n):
                c0, t0 = time.thread_time(), time.perf_counter()
                reporter.publish()
                cpu.append((time.thread_time() - c0) * 1000)
                wall.append((time.perf_counter() - t0) * 1000)
            size = len(json.dumps(reporter.snapshot()))
            share = statistics.median(cpu) / 1000 / st.DEFAULT_INTERVAL * 100
            print(
                f"status snapshot: {size} bytes; publish(): wall {_fmt(wall)}; "
                f"CPU median {statistics.median(cpu):.2f} ms = {share:.3f}% of one core "
                f"at one snapshot per {st.DEFAULT_INTERVAL:g} s"
            )
    finally:
        app.close()


def worker_cpu(broker: str, seconds: float, interval: float | None) -> float:
    """Return the process CPU share (% of one core) of an idle 4-group worker."""
    import resource

    tag = uuid.uuid4().hex[:6]
    app = App("bench-cpu", broker=broker, status_interval=interval)
    topic = app.topic(f"bench-cpu-{tag}", partitions=6)
    for g in range(4):

        @app.consumer(topic, group=f"bench-cpu-{tag}-{g}")
        async def handle(event: BenchPing) -> None:
            pass

    try:
        with app.running():
            time.sleep(3)  # joined and settled
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            time.sleep(seconds)
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    finally:
        app.close()
    used = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return used / (t1 - t0) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default=None, help="default: a fresh embedded store")
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cpu-seconds", type=float, default=0, help="also A/B an idle worker")
    args = parser.parse_args()
    broker = args.broker or f"embedded://{Path(tempfile.mkdtemp(prefix='tidings-dash-'))}"
    print(f"broker: {broker}")
    overview_latency(broker, args.groups, args.partitions, args.workers, args.requests)
    reporter_cost(broker, 100)
    if args.cpu_seconds:
        for interval in (None, st.DEFAULT_INTERVAL, None, st.DEFAULT_INTERVAL):
            share = worker_cpu(broker, args.cpu_seconds, interval)
            label = "off" if interval is None else f"every {interval:g} s"
            print(f"idle 4-group worker, status reports {label}: {share:.2f}% CPU")


if __name__ == "__main__":
    main()
