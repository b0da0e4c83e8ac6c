"""Raw confluent-kafka: the baseline every ratio is taken against.

Producer: `Producer.produce` + `flush`, with tidings' producer defaults (acks=all,
idempotence, murmur2_random, linger 5 ms), so the comparison is like for like. Consumer:
`poll(0.1)` then `consume(num_messages=499, timeout=0)` (a blocking `consume(500, t)` would
wait up to t for a full batch, adding up to t to every latency), `json.loads` +
`Account.model_validate` (`consume`) or `Account.model_validate_json` (`consume_json`, what
tidings does), a no-op handler, and an asynchronous commit at most every 100 ms
(tidings' commit cadence).
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer

from benchmarks import measure, worker
from benchmarks.workload import Account, Job, account_models, dicts, encode, filler, one_event

PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "partitioner": "murmur2_random",
    "linger.ms": 5,
}
BATCH = 500
COMMIT_EVERY = 0.1


def producer(job: Job) -> Producer:
    return Producer({"bootstrap.servers": job.bootstrap, **PRODUCER})


def consumer(job: Job, on_assign: Any = None) -> Consumer:
    c = Consumer(
        {
            "bootstrap.servers": job.bootstrap,
            "group.id": job.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    if on_assign is None:
        c.subscribe([job.topic])
    else:
        c.subscribe([job.topic], on_assign=on_assign)
    return c


def _send(p: Producer, topic: str, docs: list[dict[str, Any]]) -> int:
    sent = 0
    produce, poll = p.produce, p.poll
    for doc in docs:
        value = encode(doc)
        sent += len(value)
        while True:
            try:
                produce(topic, value, doc["account_id"].encode())
                break
            except BufferError:
                poll(0.005)
        poll(0)
    return sent


def publish(job: Job) -> dict[str, Any]:
    docs = dicts(job)
    p = producer(job)
    _send(p, job.topic, docs[: job.warmup])
    p.flush()
    c0, t0 = time.process_time(), time.perf_counter()
    sent = _send(p, job.topic, docs[job.warmup :])
    p.flush()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "events": job.events,
        "events_per_s": job.events / dt,
        "mb_per_s": sent / dt / 1e6,
        "seconds": dt,
        "cpu_window_s": cpu,
    }


def _send_events(p: Producer, topic: str, events: list[Account], chunk: int = 5_000) -> int:
    """Produce pydantic models as tidings does: its JSON encoding (pydantic's `to_json`) and
    its CloudEvents headers (a fresh id per event, one time stamp per chunk of `chunk`)."""
    sent = 0
    produce, poll = p.produce, p.poll
    to_json = Account.__pydantic_serializer__.to_json
    rand = random.getrandbits
    source, ctype = ("ce_source", b"bench"), ("content-type", b"application/json")
    spec, kind = ("ce_specversion", b"1.0"), ("ce_type", b"bench.AccountUpdated")
    for i in range(0, len(events), chunk):
        stamp = ("ce_time", datetime.now(UTC).isoformat(timespec="milliseconds").encode())
        for event in events[i : i + chunk]:
            value = to_json(event)
            sent += len(value)
            headers = [spec, ("ce_id", f"{rand(128):032x}".encode()), source, kind, stamp, ctype]
            while True:
                try:
                    produce(topic, value, event.account_id.encode(), headers=headers)
                    break
                except BufferError:
                    poll(0.005)
            poll(0)
    return sent


def publish_headers(job: Job) -> dict[str, Any]:
    """`publish` of the same events as tidings' `publish_many`: pydantic models, encoded by
    pydantic, with CloudEvents headers (the like-for-like peer of `publish_many`)."""
    events = account_models(job)
    p = producer(job)
    _send_events(p, job.topic, events[: job.warmup])
    p.flush()
    c0, t0 = time.process_time(), time.perf_counter()
    sent = _send_events(p, job.topic, events[job.warmup :])
    p.flush()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "events": job.events,
        "events_per_s": job.events / dt,
        "mb_per_s": sent / dt / 1e6,
        "seconds": dt,
        "cpu_window_s": cpu,
    }


def publish_single(job: Job) -> dict[str, Any]:
    docs = dicts(job, job.events)
    p = producer(job)
    p.produce(job.topic, b"{}")
    p.flush()
    t0 = time.perf_counter()
    for doc in docs:
        p.produce(job.topic, encode(doc), doc["account_id"].encode())
        p.flush()
    dt = time.perf_counter() - t0
    return {"events_per_s": job.events / dt, "seconds": dt}


def handle(event: Account) -> None:
    """The no-op handler."""


def _drain(c: Consumer, job: Job, on_event: Any, done: Any, *, from_json: bool = False) -> None:
    loads, validate = json.loads, Account.model_validate
    validate_json = Account.model_validate_json
    last_commit = time.monotonic()
    deadline = time.monotonic() + job.timeout
    while not done.is_set() and time.monotonic() < deadline:
        first = c.poll(0.1)  # wait for data, then take what is buffered without waiting
        if first is None:
            continue
        msgs = [first, *c.consume(BATCH - 1, 0)]
        if from_json:
            for m in msgs:
                if m.error() is None:
                    on_event(validate_json(m.value()))
        else:
            for m in msgs:
                if m.error() is None:
                    on_event(validate(loads(m.value())))
        now = time.monotonic()
        if now - last_commit >= COMMIT_EVERY:
            c.commit(asynchronous=True)
            last_commit = now
    c.commit(asynchronous=False)
    c.close()


def consume(job: Job, *, from_json: bool = False) -> dict[str, Any]:
    drain = measure.Drain(job.warmup, job.total)
    c = consumer(job)

    def on_event(event: Account) -> None:
        handle(event)
        drain.tick()

    _drain(c, job, on_event, drain.done, from_json=from_json)
    return drain.result()


def consume_json(job: Job) -> dict[str, Any]:
    """`consume` validating each value with `Account.model_validate_json` (the bytes straight
    into pydantic, as tidings does) instead of `json.loads` + `model_validate`."""
    return consume(job, from_json=True)


def latency_consume(job: Job) -> dict[str, Any]:
    lat = measure.Latencies(job.warmup, job.total)
    c = consumer(job, on_assign=lambda *_: worker.ready())

    def on_event(event: Account) -> None:
        handle(event)
        lat.record(event.seq, event.sent_ns)

    _drain(c, job, on_event, lat.done)
    return lat.result()


def latency_produce(job: Job) -> dict[str, Any]:
    """One event at a time at `job.rate`/s, linger 0, not waiting for each acknowledgement."""
    p = Producer({"bootstrap.servers": job.bootstrap, **PRODUCER, "linger.ms": 0})
    pad = filler(job)
    lag = 0
    for i, due in measure.pace(job.total, job.rate):
        lag = max(lag, time.time_ns() - due)
        doc = one_event(i, job, pad)
        doc["sent_ns"] = due
        p.produce(job.topic, encode(doc), doc["account_id"].encode())
        p.poll(0)
    p.flush()
    return {"sent": job.total, "max_send_lag_ms": lag / 1e6}
