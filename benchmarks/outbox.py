"""`python -m benchmarks.outbox`: the two edges, measured on PostgreSQL and SQLite.

    python -m benchmarks.outbox [--events N] [--broker kafka://127.0.0.1:19092|embedded]
                                [--postgres URL] [--only sqlite,postgresql]

Per database: relay throughput (N events committed in transactions of 100, then one relay
drains them to the broker), the time an outbox write adds to a one-event transaction
(median against the same transaction without it), inbox claims/s (one claim per
transaction), and commit-to-broker latency p50/p99 at 1,000 events/s (one event per
transaction, a relay running, a reader timing arrival). PostgreSQL comes from --postgres,
else $TIDINGS_POSTGRES_URL, else scripts/postgres's default; a fresh database is made.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tidings import App, Context, Event
from tidings.outbox import Relay

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"


class Tick(Event):
    seq: int
    at: float
    pad: str = ""


WORK = Table("bench_work", MetaData(), Column("id", Integer, primary_key=True))


def databases(only: list[str], pg: str, scratch: Path) -> list[tuple[str, str]]:
    out = []
    if "sqlite" in only:
        out.append(("sqlite", f"sqlite:///{scratch / 'bench.db'}"))
    if "postgresql" in only:
        server = make_url(pg)
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            out.append(("postgresql", server.set(database=name).render_as_string(False)))
        except Exception as exc:
            print(f"skipping PostgreSQL: {type(exc).__name__} at {pg} (scripts/postgres start)")
        finally:
            admin.dispose()
    return out


def default_broker() -> str:
    """Kafka on $TIDINGS_KAFKA_PORT (19092) when it answers, else the embedded broker."""
    port = int(os.environ.get("TIDINGS_KAFKA_PORT", "19092"))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return f"kafka://127.0.0.1:{port}"
    except OSError:
        return "embedded"


def relay_throughput(app: App, engine: Engine, topic: str, events: int) -> dict[str, float]:
    outbox = app.outbox(engine, batch=2000)
    outbox.create_tables()
    pad = "x" * 200
    t0 = time.perf_counter()
    for start in range(0, events, 100):
        with Session(engine) as s, s.begin():
            for i in range(start, min(start + 100, events)):
                outbox.publish(s, topic, Tick(seq=i, at=0.0, pad=pad), key=f"k{i % 100}")
    written = time.perf_counter() - t0
    relay = Relay(outbox)
    app.publish(topic, Tick(seq=-1, at=0.0))  # warm: the producer is connected
    t0 = time.perf_counter()
    relayed = relay.drain()
    elapsed = time.perf_counter() - t0
    relay.close()
    assert relayed == events, (relayed, events)
    return {"write_events_per_s": events / written, "relay_events_per_s": events / elapsed}


def write_cost(app: App, engine: Engine, topic: str, n: int = 500) -> dict[str, float]:
    outbox = app.outbox(engine)
    WORK.create(engine, checkfirst=True)
    plain, boxed = [], []
    for i in range(n):
        t0 = time.perf_counter()
        with Session(engine) as s, s.begin():
            s.execute(insert(WORK))
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with Session(engine) as s, s.begin():
            s.execute(insert(WORK))
            outbox.publish(s, topic, Tick(seq=i, at=0.0), key=f"k{i % 100}")
        boxed.append(time.perf_counter() - t0)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tidings_outbox"))
    return {
        "tx_ms": statistics.median(plain) * 1000,
        "tx_with_outbox_ms": statistics.median(boxed) * 1000,
    }


def inbox_claims(app: App, engine: Engine, n: int = 2000) -> dict[str, float]:
    inbox = app.inbox(engine)
    inbox.create_tables()
    t0 = time.perf_counter()
    for i in range(n):
        ctx = Context("t", 0, i, None, {}, f"e{i}", "Tick", 0.0, 1, "bench")
        with Session(engine) as s, s.begin():
            inbox.claim(s, ctx)
    return {"inbox_claims_per_s": n / (time.perf_counter() - t0)}


def latency(app: App, engine: Engine, topic: str, seconds: float) -> dict[str, float]:
    outbox = app.outbox(engine, poll=0.5)
    outbox.create_tables()
    backend = app.backend
    consumer = backend.open_consumer(None, [topic], start="latest", listener=None)
    consumer.fetch(1, 0.5)
    arrivals: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            now_records = consumer.fetch(1000, 0.05)
            now = time.time()
            for r in now_records:
                arrivals.append(now - Tick.model_validate_json(r.value or b"").at)

    reader = threading.Thread(target=read)
    reader.start()
    count = int(seconds * 1000)
    with Relay(outbox).running():
        t0 = time.perf_counter()
        for i in range(count):
            due = t0 + i / 1000
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with Session(engine) as s, s.begin():
                outbox.publish(s, topic, Tick(seq=i, at=time.time()), key=f"k{i % 100}")
        deadline = time.monotonic() + 30
        while len(arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.05)
    stop.set()
    reader.join()
    consumer.close()
    arrivals.sort()
    # `at` is stamped just before the commit: the latency includes the commit itself.
    return {
        "latency_p50_ms": arrivals[len(arrivals) // 2] * 1000,
        "latency_p99_ms": arrivals[int(len(arrivals) * 0.99)] * 1000,
        "latency_received": float(len(arrivals)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.outbox", description=__doc__)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument("--broker", default=None, help="kafka://HOST:PORT or embedded")
    p.add_argument("--postgres", default=os.environ.get("TIDINGS_POSTGRES_URL") or PG_DEFAULT)
    p.add_argument("--only", default="sqlite,postgresql")
    a = p.parse_args(argv)
    a.broker = a.broker or default_broker()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind, url in databases(a.only.split(","), a.postgres, Path(scratch)):
            engine = create_engine(url)
            broker = a.broker if a.broker != "embedded" else f"embedded://{scratch}/{kind}-data"
            app = App("bench-outbox", broker=broker)
            topic = app.topic(f"bench-outbox-{uuid.uuid4().hex[:8]}", partitions=3).name
            row: dict[str, Any] = {}
            try:
                row.update(relay_throughput(app, engine, topic, a.events))
                row.update(write_cost(app, engine, topic))
                row.update(inbox_claims(app, engine))
                row.update(latency(app, engine, topic, a.latency_seconds))
            finally:
                app.close()
                engine.dispose()
            results[kind] = row
            print(f"{kind} -> {broker.split('://')[0]}:")
            for name, value in row.items():
                print(f"  {name:24} {value:12,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
