"""FastStream, on its aiokafka broker (`faststream.kafka`) or its confluent one.

Subscriber: a per-message async handler annotated with `Account`, so FastStream decodes
the JSON and validates it; FastStream's default acknowledgement for Kafka (auto-commit).
Per-message logging is off (``logger=None``): tidings does not log per event either.
Publisher: `broker.publish(model, topic, key=..., no_confirm=True)`, the futures awaited
per window of 5,000 (the pipelined mode), as in latency runs (linger 0).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks import measure, worker
from benchmarks.workload import Account, Job, account_models, filler, one_event

WINDOW = 5_000


def make_broker(flavor: str, job: Job, linger_ms: int = 5) -> Any:
    common: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": linger_ms}
    if flavor == "kafka":
        from faststream.kafka import KafkaBroker

        return KafkaBroker(job.bootstrap, logger=None, max_batch_size=1 << 20, **common)
    from faststream.confluent import KafkaBroker as ConfluentBroker

    return ConfluentBroker(job.bootstrap, logger=None, **common)


def _subscriber(flavor: str, broker: Any, job: Job, signal_ready: bool) -> Any:
    kwargs: dict[str, Any] = {"group_id": job.group, "auto_offset_reset": "earliest"}
    if signal_ready and flavor == "kafka":
        from aiokafka.abc import ConsumerRebalanceListener

        class Ready(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            async def on_partitions_assigned(self, assigned: Any) -> None:
                worker.ready()

        kwargs["listener"] = Ready()
    elif signal_ready:
        kwargs["on_assign"] = lambda *_: worker.ready()
    return broker.subscriber(job.topic, **kwargs)


async def _send(broker: Any, topic: str, models: list[Account]) -> None:
    for i in range(0, len(models), WINDOW):
        futures = [
            await broker.publish(m, topic, key=m.account_id.encode(), no_confirm=True)
            for m in models[i : i + WINDOW]
        ]
        await asyncio.gather(*futures)


async def _publish(flavor: str, job: Job) -> dict[str, Any]:
    models = account_models(job)
    broker = make_broker(flavor, job)
    await broker.connect()
    try:
        await _send(broker, job.topic, models[: job.warmup])
        t0 = time.perf_counter()
        await _send(broker, job.topic, models[job.warmup :])
        dt = time.perf_counter() - t0
    finally:
        await broker.stop()
    size = len(models[-1].model_dump_json())
    return {
        "events_per_s": job.events / dt,
        "mb_per_s": job.events * size / dt / 1e6,
        "seconds": dt,
    }


def publish(flavor: str, job: Job) -> dict[str, Any]:
    return asyncio.run(_publish(flavor, job))


async def _serve(broker: Any, done: Any, timeout: float, signal_ready: bool) -> None:
    await broker.start()
    if signal_ready:
        worker.ready()  # backstop; the assignment callback normally said it first
    deadline = time.monotonic() + timeout
    try:
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await broker.stop()


def consume(flavor: str, job: Job) -> dict[str, Any]:
    drain = measure.Drain(job.warmup, job.total)
    broker = make_broker(flavor, job)

    @_subscriber(flavor, broker, job, signal_ready=False)
    async def handle(msg: Account) -> None:
        drain.tick()

    asyncio.run(_serve(broker, drain.done, job.timeout, signal_ready=False))
    return drain.result()


def latency_consume(flavor: str, job: Job) -> dict[str, Any]:
    lat = measure.Latencies(job.warmup, job.total)
    broker = make_broker(flavor, job)

    @_subscriber(flavor, broker, job, signal_ready=True)
    async def handle(msg: Account) -> None:
        lat.record(msg.seq, msg.sent_ns)

    asyncio.run(_serve(broker, lat.done, job.timeout, signal_ready=False))
    return lat.result()


async def _latency_produce(flavor: str, job: Job) -> dict[str, Any]:
    """`publish(..., no_confirm=True)` at `job.rate`/s with linger 0."""
    broker = make_broker(flavor, job, linger_ms=0)
    await broker.connect()
    pad = filler(job)
    flight = measure.InFlight()
    try:
        async for i, due in measure.apace(job.total, job.rate):
            doc = one_event(i, job, pad)
            doc["sent_ns"] = due
            model, key = Account(**doc), doc["account_id"].encode()
            await flight.add(await broker.publish(model, job.topic, key=key, no_confirm=True), due)
        await flight.drain()
        lag = flight.max_lag_ms
    finally:
        await broker.stop()
    return {"sent": job.total, "max_send_lag_ms": lag}


def latency_produce(flavor: str, job: Job) -> dict[str, Any]:
    return asyncio.run(_latency_produce(flavor, job))


SCENARIOS = {
    "publish": publish,
    "consume": consume,
    "latency_consume": latency_consume,
    "latency_produce": latency_produce,
}


def scenario(name: str, flavor: str) -> Any:
    """Return scenario `name` for FastStream's `flavor` broker ("kafka" or "confluent")."""
    run = SCENARIOS.get(name)
    if run is None:
        raise AttributeError(name)
    return lambda job: run(flavor, job)
