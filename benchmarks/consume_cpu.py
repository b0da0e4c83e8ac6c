"""CPU per consumed event, tidings against raw confluent-kafka, on a broker already running.

    python -m benchmarks.consume_cpu [--bootstrap 127.0.0.1:19092] [--events 100000]
                                     [--reps 5] [--only raw,raw-json,tidings,run,...]
                                     [--embedded]

A quicker companion of `make bench` for work on the consume path: one topic (6 partitions,
~1 KB events, published once by tidings' `publish_many`), then every consumer in its own
process, in rotated order per repetition, each in a fresh group. Prints the median (and
min-max) of CPU µs per event over the measured window (process CPU of every thread / events)
and events/s. The machine's load moves wall-clock figures; CPU per event moves much less.
With `--embedded` the same on the embedded backend (a plain SQLite read loop as the peer).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import replace
from typing import Any

from benchmarks import procs
from benchmarks.workload import Job

KAFKA = {
    "raw": ("raw_confluent", "consume"),
    "raw-json": ("raw_confluent", "consume_json"),
    "tidings": ("tidings_kafka", "consume"),
    "run": ("tidings_kafka", "consume_run"),
}
EMBEDDED = {
    "sqlite-json": ("tidings_embedded", "consume_sqlite"),
    "tidings": ("tidings_embedded", "consume"),
    "run": ("tidings_embedded", "consume_run"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.consume_cpu")
    p.add_argument("--bootstrap", default="127.0.0.1:19092")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--only", default="")
    p.add_argument("--embedded", action="store_true")
    p.add_argument(
        "--vs-src",
        metavar="DIR",
        help="also run each consumer with tidings imported from DIR (e.g. `git worktree add "
        "/tmp/before HEAD~1` then /tmp/before/src), interleaved: a before/after pair per rep",
    )
    a = p.parse_args(argv)
    table = EMBEDDED if a.embedded else KAFKA
    names = [n for n in a.only.split(",") if n] or list(table)
    scratch = tempfile.mkdtemp(prefix="tidings-cpu-")
    tag = uuid.uuid4().hex[:8]
    base = Job(
        contender="tidings_embedded" if a.embedded else "tidings_kafka",
        scenario="publish",
        bootstrap=a.bootstrap,
        topic=f"bench-cpu-{tag}",
        data_dir=f"{scratch}/data",
        events=a.events,
        warmup=max(1_000, a.events // 20),
    )
    try:
        pub = procs.run(base)
        if "error" in pub:
            print(pub, file=sys.stderr)
            return 1
        variants = [(n, None) for n in names]
        if a.vs_src:
            variants += [(f"{n}@vs", a.vs_src) for n in names]
        rows: dict[str, list[dict[str, Any]]] = {n: [] for n, _ in variants}
        for rep in range(a.reps):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for name, src in order:
                contender, scenario = table[name.removesuffix("@vs")]
                job = replace(
                    base, contender=contender, scenario=scenario, group=f"g-{uuid.uuid4().hex}"
                )
                procs.ENV.pop("PYTHONPATH", None)
                if src is not None:
                    procs.ENV["PYTHONPATH"] = src
                res = procs.run(job)
                procs.ENV.pop("PYTHONPATH", None)
                if "error" in res:
                    print(f"{name}: {res['error']} {res.get('stderr', '')[-800:]}", file=sys.stderr)
                    continue
                rows[name].append(res)
                cpu = res["cpu_window_s"] / res["events"] * 1e6
                gc_note = ""
                if "gc_window_s" in res:
                    gc_note = f"  (GC {res['gc_window_s'] / res['events'] * 1e6:.2f} µs/ev)"
                print(
                    f"rep {rep} {name:<12} {cpu:6.2f} µs/ev {res['events_per_s']:9,.0f} ev/s"
                    + gc_note
                )
        print(f"\n{'consumer':<12} {'CPU µs/ev (min-max)':>24} {'events/s':>10}")
        for name, got in rows.items():
            if not got:
                continue
            cpu = [r["cpu_window_s"] / r["events"] * 1e6 for r in got]
            rate = [r["events_per_s"] for r in got]
            print(
                f"{name:<12} {statistics.median(cpu):8.2f} ({min(cpu):.2f}-{max(cpu):.2f})"
                f"{statistics.median(rate):>14,.0f}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not a.embedded:
            from benchmarks.broker import Broker

            broker = Broker(int(a.bootstrap.rsplit(":", 1)[1]))
            broker.delete_topics([base.topic])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
