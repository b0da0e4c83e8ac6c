"""aiokafka: `AIOKafkaConsumer.getmany` and a pipelined `AIOKafkaProducer.send`.

Producer settings match tidings' (acks=all, idempotence, linger 5 ms, 1 MiB batches).
Consumer: `getmany(max_records=500)`, `json.loads` + `Account.model_validate`, an awaited
no-op handler, and a commit at most every 100 ms (tidings' cadence).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener

from benchmarks import measure, worker
from benchmarks.workload import Account, Job, dicts, encode, filler, one_event

WINDOW = 5_000
BATCH = 500
COMMIT_EVERY = 0.1


def producer(job: Job, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=job.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=1 << 20,
    )


async def _send(p: AIOKafkaProducer, topic: str, docs: list[dict[str, Any]]) -> int:
    sent = 0
    for i in range(0, len(docs), WINDOW):
        futures = []
        for doc in docs[i : i + WINDOW]:
            value = encode(doc)
            sent += len(value)
            futures.append(await p.send(topic, value, key=doc["account_id"].encode()))
        await asyncio.gather(*futures)
    return sent


async def _publish(job: Job) -> dict[str, Any]:
    docs = dicts(job)
    p = producer(job)
    await p.start()
    try:
        await _send(p, job.topic, docs[: job.warmup])
        t0 = time.perf_counter()
        sent = await _send(p, job.topic, docs[job.warmup :])
        dt = time.perf_counter() - t0
    finally:
        await p.stop()
    return {"events_per_s": job.events / dt, "mb_per_s": sent / dt / 1e6, "seconds": dt}


def publish(job: Job) -> dict[str, Any]:
    return asyncio.run(_publish(job))


async def handle(event: Account) -> None:
    """The no-op handler."""


class _ReadyListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reports READY to the parent on the first assignment."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        worker.ready()


async def _drain(job: Job, on_event: Any, done: Any, signal_ready: bool = False) -> None:
    c = AIOKafkaConsumer(
        bootstrap_servers=job.bootstrap,
        group_id=job.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    c.subscribe([job.topic], listener=_ReadyListener() if signal_ready else None)
    await c.start()
    loads, validate = json.loads, Account.model_validate
    last_commit = time.monotonic()
    deadline = time.monotonic() + job.timeout
    try:
        while not done.is_set() and time.monotonic() < deadline:
            batches = await c.getmany(timeout_ms=100, max_records=BATCH)
            for records in batches.values():
                for r in records:
                    await on_event(validate(loads(r.value)))
            now = time.monotonic()
            if batches and now - last_commit >= COMMIT_EVERY:
                await c.commit()
                last_commit = now
        await c.commit()
    finally:
        await c.stop()


def consume(job: Job) -> dict[str, Any]:
    drain = measure.Drain(job.warmup, job.total)

    async def on_event(event: Account) -> None:
        await handle(event)
        drain.tick()

    asyncio.run(_drain(job, on_event, drain.done))
    return drain.result()


def latency_consume(job: Job) -> dict[str, Any]:
    lat = measure.Latencies(job.warmup, job.total)

    async def on_event(event: Account) -> None:
        await handle(event)
        lat.record(event.seq, event.sent_ns)

    asyncio.run(_drain(job, on_event, lat.done, signal_ready=True))
    return lat.result()


async def _latency_produce(job: Job) -> dict[str, Any]:
    """`send()` at `job.rate`/s with linger 0; acknowledgements are awaited in the background."""
    p = producer(job, linger_ms=0)
    await p.start()
    pad = filler(job)
    flight = measure.InFlight()
    try:
        async for i, due in measure.apace(job.total, job.rate):
            doc = one_event(i, job, pad)
            doc["sent_ns"] = due
            await flight.add(
                await p.send(job.topic, encode(doc), key=doc["account_id"].encode()), due
            )
        await flight.drain()
        lag = flight.max_lag_ms
    finally:
        await p.stop()
    return {"sent": job.total, "max_send_lag_ms": lag}


def latency_produce(job: Job) -> dict[str, Any]:
    return asyncio.run(_latency_produce(job))
