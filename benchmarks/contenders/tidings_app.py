"""tidings through its public API; `tidings_kafka` and `tidings_embedded` pick the broker.

Publish: `app.publish_many` in chunks (the fast path) and `app.publish` one at a time.
Consume: an async no-op handler annotated with the event class, so tidings decodes and
validates every event; it commits on its own (handled offsets, every 100 ms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

from benchmarks import measure, worker
from benchmarks.contenders.tidings_run import consume_run, idle, profile_run
from benchmarks.workload import AccountEvent, Job, filler, one_event, tidings_events
from tidings import App, Context

CHUNK = 5_000
H_DUE = "tidings-deliver-at"


def app_for(url: str, job: Job) -> tuple[App, Any]:
    app = App("bench", broker=url)
    return app, app.topic(job.topic, partitions=job.partitions)


def publish(
    url: str, job: Job, timed: Callable[[], AbstractContextManager[Any]] = nullcontext
) -> dict[str, Any]:
    """`publish_many` in chunks; `timed()` wraps the measured part (the profiler's hook)."""
    chunk = int(job.extra.get("chunk", CHUNK))
    items = tidings_events(job)
    app, topic = app_for(url, job)
    for i in range(0, job.warmup, chunk):
        app.publish_many(topic, items[i : min(i + chunk, job.warmup)])
    measured = items[job.warmup :]
    with timed():
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(0, len(measured), chunk):
            app.publish_many(topic, measured[i : i + chunk])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    app.close()
    size = sum(len(e.model_dump_json()) for _, e in measured[:1000]) / min(1000, len(measured))
    return {
        "events": job.events,
        "events_per_s": job.events / dt,
        "mb_per_s": job.events * size / dt / 1e6,
        "seconds": dt,
        "cpu_window_s": cpu,
    }


def publish_single(url: str, job: Job) -> dict[str, Any]:
    items = tidings_events(job, job.events)
    app, topic = app_for(url, job)
    app.publish(topic, items[0][1], key=items[0][0])  # connect and create the topic
    t0 = time.perf_counter()
    for key, event in items:
        app.publish(topic, event, key=key)
    dt = time.perf_counter() - t0
    app.close()
    return {"events_per_s": job.events / dt, "seconds": dt}


def _run(app: App, done: Any, timeout: float, signal_ready: bool = False) -> None:
    with app.running() as runner:
        if signal_ready:
            _wait_assigned(runner, app)
            worker.ready()
        done.wait(timeout)
    app.close()


def _wait_assigned(runner: Any, app: App, timeout: float = 60.0) -> None:
    """Wait until this member owns every partition (a fresh group's first join)."""
    consumed = {spec.topic for spec in app.consumers}
    want = sum(spec.partitions_or_default for spec in app.topics.values() if spec.name in consumed)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = sum(len(w.statistics().get("assigned", ())) for w in runner.workers)
        if owned >= want:
            return
        time.sleep(0.01)


def consume(url: str, job: Job) -> dict[str, Any]:
    drain = measure.Drain(job.warmup, job.total)
    app, topic = app_for(url, job)

    @app.consumer(topic, group=job.group)
    async def noop(event: AccountEvent) -> None:
        drain.tick()

    _run(app, drain.done, job.timeout)
    return drain.result()


def latency_consume(url: str, job: Job) -> dict[str, Any]:
    lat = measure.Latencies(job.warmup, job.total)
    app, topic = app_for(url, job)

    @app.consumer(topic, group=job.group)
    async def measure_latency(event: AccountEvent) -> None:
        lat.record(event.seq, event.sent_ns)

    _run(app, lat.done, job.timeout, signal_ready=True)
    return lat.result()


def latency_produce(url: str, job: Job) -> dict[str, Any]:
    """Events at `job.rate`/s via `publish_async` (each returns once durable), several in flight."""
    return asyncio.run(_latency_produce(url, job))


async def _latency_produce(url: str, job: Job) -> dict[str, Any]:
    # Default settings, as a user would run it: on Kafka publish_async awaits delivery
    # reports without a thread per call; on the embedded broker it commits in the default
    # executor (a commit takes ~0.1 ms, so its 6 threads keep up with 1,000/s easily).
    app, topic = app_for(url, job)
    pad = filler(job)
    await app.publish_async(topic, AccountEvent(**one_event(-1, job, pad)), key="warm")
    delay = timedelta(seconds=job.delay) if job.delay else None
    flight = measure.InFlight()
    async for i, due in measure.apace(job.total, job.rate):
        doc = one_event(i, job, pad)
        doc["sent_ns"] = due
        event = AccountEvent(**doc)
        await flight.add(app.publish_async(topic, event, key=doc["account_id"], delay=delay), due)
    await flight.drain()
    app.close()
    return {"sent": job.total, "max_send_lag_ms": flight.max_lag_ms}


def delay_consume(url: str, job: Job) -> dict[str, Any]:
    """Lateness of delayed events: handled at - their due time (header tidings-deliver-at)."""
    lat = measure.Latencies(job.warmup, job.total)
    app, topic = app_for(url, job)

    @app.consumer(topic, group=job.group)
    async def lateness(event: AccountEvent, ctx: Context) -> None:
        if event.seq >= 0:
            lat.record_seconds(event.seq, time.time() - float(ctx.headers[H_DUE]))

    _run(app, lat.done, job.timeout, signal_ready=True)
    return lat.result()


def concurrency(url: str, job: Job) -> dict[str, Any]:
    """Events/s of a handler that sleeps `job.sleep` s, at `job.concurrency`."""
    items = tidings_events(job, job.events)
    app, topic = app_for(url, job)
    for i in range(0, len(items), CHUNK):
        app.publish_many(topic, items[i : i + CHUNK])
    drain = measure.Drain(0, job.events)
    first: list[float] = []

    @app.consumer(topic, group=job.group, concurrency=job.concurrency)
    async def slow(event: AccountEvent) -> None:
        if not first:
            first.append(time.perf_counter())
        await asyncio.sleep(job.sleep)
        drain.tick()

    _run(app, drain.done, job.timeout)
    if drain.end is None or not first:
        return {"error": f"handled {drain.count} of {job.events}"}
    seconds = drain.end - first[0]
    return {"events": job.events, "seconds": seconds, "events_per_s": job.events / seconds}


SCENARIOS = {
    "publish": publish,
    "publish_single": publish_single,
    "consume": consume,
    "consume_run": consume_run,
    "idle": idle,
    "profile_run": profile_run,
    "latency_consume": latency_consume,
    "latency_produce": latency_produce,
    "delay_consume": delay_consume,
    "delay_produce": latency_produce,  # delayed publishing is paced like latency publishing
    "concurrency": concurrency,
}


def scenario(name: str, url_of: Any) -> Any:
    """Return scenario `name` for a backend whose broker URL `url_of(job)` gives."""
    run = SCENARIOS.get(name)
    if run is None:
        raise AttributeError(name)
    return lambda job: run(url_of(job), job)
