"""`python -m benchmarks`: tidings side by side with raw confluent-kafka, aiokafka, FastStream
and Kafka's own tools, on one local broker, in one run.

    python -m benchmarks [--events N] [--size BYTES] [--reps R] [--quick] [--only a,b]
                         [--profile] [--port 19192]

`--only` takes contender names (tidings-kafka, tidings-embedded, raw-confluent, aiokafka,
faststream-kafka, faststream-confluent, kafka-tools) and/or scenarios (throughput, idle,
latency, delays, concurrency, sqlite, profile). Results: benchmarks/results/latest.json and
latest.png (plus latest.md, the table in Markdown).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, procs, report
from benchmarks.broker import DEFAULT_PORT, Broker
from benchmarks.registry import CONTENDERS, SCENARIOS
from benchmarks.runner import Runner, Settings, kafka_delays

DESCRIPTION = (
    "tidings side by side with raw confluent-kafka, aiokafka, FastStream and Kafka's own tools"
)
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "profile"]


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    p.add_argument("--events", type=int, help="measured events per run (default 200,000)")
    p.add_argument("--warmup", type=int, help="warm-up events per run (default events/20)")
    p.add_argument("--size", type=int, default=1000, help="JSON value bytes (default 1000)")
    p.add_argument("--reps", type=int, help="repetitions; medians are reported (default 3)")
    p.add_argument("--single", type=int, help="events for one-at-a-time publish (3,000)")
    p.add_argument("--latency-seconds", type=float, help="measured seconds at 1,000/s (10)")
    p.add_argument("--latency-reps", type=int, help="repetitions of latency runs (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20,000 events, 1 rep")
    p.add_argument("--only", default="", help="comma-separated contenders and/or scenarios")
    p.add_argument("--profile", action="store_true", help="also profile tidings' Kafka consume")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="local broker port (19192)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    a = p.parse_args(argv)

    s = Settings()
    if a.quick:
        s = Settings(
            events=20_000,
            warmup=2_000,
            reps=1,
            single=500,
            latency_seconds=3.0,
            latency_warmup_seconds=1.0,
            concurrency_events=1_000,
            concurrency_slow_events=100,
            idle_seconds=10.0,
            quick=True,
            timeout=120.0,
        )
    if a.events is not None:
        s.events = a.events
        s.warmup = max(1_000, a.events // 20)
    if a.warmup is not None:
        s.warmup = a.warmup
    s.size = a.size
    s.reps = a.reps if a.reps is not None else s.reps
    s.single = a.single if a.single is not None else s.single
    if a.latency_seconds is not None:
        s.latency_seconds = a.latency_seconds
    if a.latency_reps is not None:
        s.latency_reps = a.latency_reps
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS and n not in SCENARIOS]
    if unknown:
        p.error(f"unknown --only name(s): {', '.join(unknown)}")
    s.contenders = [n for n in names if n in CONTENDERS] or list(CONTENDERS)
    s.scenarios = [n for n in names if n in SCENARIOS] or list(DEFAULT_SCENARIOS)
    if a.profile and "profile" not in s.scenarios:
        s.scenarios.append("profile")
    s.profile = "profile" in s.scenarios
    return s, a


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rotated(items: list[str], rep: int) -> list[str]:
    k = rep % len(items) if items else 0
    return items[k:] + items[:k]


def run_all(r: Runner, s: Settings, out: Path) -> dict[str, Any]:
    chosen = s.contenders
    extra: dict[str, Any] = {"kafka_delays": kafka_delays()}
    for rep in range(s.reps):
        if "throughput" in s.scenarios:
            log(f"== throughput, rep {rep + 1}/{s.reps}")
            for name in rotated(chosen, rep):
                r.throughput(CONTENDERS[name], rep)
        if "sqlite" in s.scenarios:
            r.sqlite(rep)
    if "idle" in s.scenarios:
        log(f"== idle: a joined `tidings run` worker with nothing to do, {s.idle_seconds:g} s")
        for name in ("tidings-kafka", "tidings-embedded"):
            if name in chosen:
                r.idle(CONTENDERS[name])
    if "latency" in s.scenarios:
        lat = [n for n in chosen if CONTENDERS[n].latency]
        for rep in range(s.latency_reps):
            log(f"== end-to-end latency at {s.rate:,}/s, rep {rep + 1}/{s.latency_reps}")
            for name in rotated(lat, rep):
                r.latency(CONTENDERS[name], rep)
    if "delays" in s.scenarios:
        log(f"== delay lateness at {s.rate:,}/s, delay {s.delay_seconds:g} s")
        for name in ("tidings-embedded", "tidings-kafka"):
            if name not in chosen:
                continue
            if name == "tidings-kafka" and not extra["kafka_delays"]["available"]:
                log(f"  {name}: {extra['kafka_delays']['reason']}")
                continue
            result = r.latency(CONTENDERS[name], 0, delay=s.delay_seconds)
            if result.get("incomplete"):
                slower = max(1, s.rate // 10)
                log(f"  {name}: {s.rate:,}/s is not sustained; measuring at {slower:,}/s")
                r.latency(CONTENDERS[name], 0, delay=s.delay_seconds, rate=slower)
    if "concurrency" in s.scenarios:
        log("== concurrency: 10 ms async handler, 100 keys")
        for name in ("tidings-embedded", "tidings-kafka"):
            if name in chosen:
                for level in (1, 50):
                    r.concurrency(CONTENDERS[name], level)
    if s.profile:
        log("== profile: tidings consume on Kafka, under pyinstrument then cProfile")
        extra["profile"] = r.profile(out)
        log(f"  {extra['profile']}")
    return extra


def snapshot_src(scratch: Path) -> Path:
    """Copy src/tidings as it is now, so every subprocess of this run imports the same code
    even while others edit or commit (uncommitted changes included; see versions)."""
    dest = scratch / "src"
    shutil.copytree(Path(procs.ROOT) / "src" / "tidings", dest / "tidings")
    procs.ENV["PYTHONPATH"] = str(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    s, a = parse(argv)
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    broker = Broker(a.port)
    needs_kafka = any(CONTENDERS[n].kind != "embedded" for n in s.contenders) or s.profile
    try:
        info = machine.machine(str(scratch))
        versions = machine.versions()  # the code the snapshot below copies
        snapshot_src(scratch)
        log(f"machine: {info['cpu_model']}, {info['cores']} cores, {info['ram_gb']} GB")
        if needs_kafka:
            log(f"broker: 127.0.0.1:{a.port} (scripts/kafka start)")
            broker.start()
        r = Runner(s, broker, scratch, log)
        extra = run_all(r, s, out)
    finally:
        started_here = broker.started
        broker.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = report.summarize(r.runs)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - t0, 1),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": info,
        "versions": versions,
        "settings": asdict(s) | {"broker": broker.bootstrap, "broker_started_here": started_here},
        **extra,
        "background_busy_pct": report.background(r.runs),
        "summary": summary,
        "targets": report.targets(summary),
        "runs": r.runs,
    }
    report.print_tables(results)
    stem = "quick" if s.quick else "partial" if a.only else "latest"
    report.write_json(results, out / f"{stem}.json")
    report.write_png(results, out / f"{stem}.png")
    (out / f"{stem}.md").write_text(report.markdown(results))
    log(f"wrote {out / stem}.json, .png, .md in {results['wall_s']:.0f} s")
    return 0
