"""Run every scenario for every chosen contender, each in a subprocess of its own.

Per repetition, the contenders run in rotated order (A B C, then B C A, ...) so drift is
spread evenly. Each throughput run gets a fresh 6-partition topic (or data directory):
the contender publishes warm-up + measured events into it, then consumes them back in a
fresh group; the timers exclude warm-up and group join.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks import machine, procs
from benchmarks.broker import Broker
from benchmarks.contenders import kafka_tools
from benchmarks.registry import CONTENDERS, Contender
from benchmarks.workload import Job

Log = Callable[[str], None]


@dataclass
class Settings:
    events: int = 200_000
    warmup: int = 10_000
    size: int = 1000
    keys: int = 10_000
    partitions: int = 6
    reps: int = 3
    single: int = 3_000
    rate: int = 1000
    latency_seconds: float = 10.0
    latency_warmup_seconds: float = 3.0
    latency_reps: int = 1
    delay_seconds: float = 2.0
    concurrency_events: int = 2_000
    concurrency_slow_events: int = 200
    idle_seconds: float = 30.0
    contenders: list[str] = field(default_factory=lambda: list(CONTENDERS))
    scenarios: list[str] = field(default_factory=list)
    profile: bool = False
    quick: bool = False
    timeout: float = 300.0


class Runner:
    """Holds the broker, a scratch directory for embedded data, and every run's record."""

    def __init__(self, settings: Settings, broker: Broker, scratch: Path, log: Log) -> None:
        self.s = settings
        self.broker = broker
        self.scratch = scratch
        self.log = log
        self.runs: list[dict[str, Any]] = []

    # -- helpers -------------------------------------------------------------------------

    def _job(self, c: Contender, scenario: str, tag: str, **kw: Any) -> Job:
        name = f"bench-{c.name}-{tag}-{uuid.uuid4().hex[:8]}"
        job = Job(
            contender=c.module,
            scenario=scenario,
            bootstrap=self.broker.bootstrap,
            topic=name,
            group=f"g-{name}",
            data_dir=str(self.scratch / name),
            events=self.s.events,
            warmup=self.s.warmup,
            size=self.s.size,
            keys=self.s.keys,
            partitions=self.s.partitions,
            rate=self.s.rate,
            timeout=self.s.timeout,
        )
        return replace(job, **kw)

    def _prepare(self, c: Contender, job: Job) -> None:
        if c.kind != "embedded":
            self.broker.create_topic(job.topic, job.partitions)

    def _cleanup(self, c: Contender, jobs: list[Job]) -> None:
        if c.kind == "embedded":
            for job in jobs:
                shutil.rmtree(job.data_dir, ignore_errors=True)
        else:
            self.broker.delete_topics(sorted({j.topic for j in jobs}))

    def _record(self, c: Contender, scenario: str, rep: int, result: dict[str, Any]) -> None:
        result.pop("stdout", None)
        row = {"contender": c.name, "scenario": scenario, "rep": rep, **result}
        self.runs.append(row)
        if "error" in result:
            self.log(f"  ! {c.name} {scenario}: {result['error']}")
            if result.get("stderr"):
                self.log("    " + result["stderr"].strip().splitlines()[-1][:300])
        else:
            shown = {k: _short(v) for k, v in result.items() if k not in ("stderr",)}
            self.log(f"  {c.name:<21} {scenario:<16} {shown}")

    def _measure(self, c: Contender, fn: Callable[[], dict[str, Any]], events: int) -> dict:
        """Run `fn` on a settled machine; add background CPU and broker CPU per event."""
        busy = machine.settle()
        cpu0 = self.broker.cpu_seconds()
        t0 = time.monotonic()
        result = fn()
        result["wall_s"] = time.monotonic() - t0
        if c.kind != "embedded" and events:
            result["broker_cpu_us_per_event"] = (self.broker.cpu_seconds() - cpu0) / events * 1e6
        if "cpu_s" in result and events:
            # The whole process (start-up, join, warm-up included) per event ...
            result["process_cpu_us_per_event"] = result["cpu_s"] / events * 1e6
            result["cpu_us_per_event"] = result["process_cpu_us_per_event"]
        if result.get("cpu_window_s") and result.get("events"):
            # ... and the headline figure: every thread's CPU over the measured window.
            result["cpu_us_per_event"] = result["cpu_window_s"] / result["events"] * 1e6
        result["busy_before_pct"] = busy
        return result

    # -- scenarios -----------------------------------------------------------------------

    def throughput(self, c: Contender, rep: int) -> None:
        job = self._job(c, "publish", f"r{rep}")
        self._prepare(c, job)
        jobs = [job]
        try:
            if c.kind == "tool":
                pub = self._measure(c, lambda: kafka_tools.publish(self.broker, job), job.total)
            else:
                pub = self._measure(c, lambda: procs.run(job), job.total)
            pub.pop("rss_mb", None)  # the producer's RSS is not a figure we report
            self._record(c, "publish", rep, pub)
            if "error" in pub:
                return
            for scenario in c.publishes[1:]:  # more ways to publish, into topics of their own
                more = self._job(c, scenario, f"r{rep}{scenario[-4:]}")
                self._prepare(c, more)
                jobs.append(more)
                out = self._measure(c, lambda more=more: procs.run(more), more.total)
                out.pop("rss_mb", None)
                self._record(c, scenario, rep, out)
            for scenario in c.consumes:
                cons = replace(job, scenario=scenario, group=f"{job.group}-{scenario}")
                if c.kind == "tool":
                    res = self._measure(
                        c, lambda cons=cons: kafka_tools.consume(self.broker, cons), cons.total
                    )
                else:
                    res = self._measure(c, lambda cons=cons: procs.run(cons), cons.total)
                self._record(c, scenario, rep, res)
            if c.single:
                single = self._job(c, "publish_single", f"r{rep}s", events=self.s.single, warmup=0)
                self._prepare(c, single)
                jobs.append(single)
                out = self._measure(c, lambda: procs.run(single), single.events)
                out.pop("rss_mb", None)
                self._record(c, "publish_single", rep, out)
        finally:
            self._cleanup(c, jobs)

    def _pair(
        self, c: Contender, consumer: Job, producer: Job, scenario: str, rep: int
    ) -> dict[str, Any]:
        """Start a consumer, wait for READY, run the producer, collect the consumer."""
        self._prepare(c, consumer)
        if producer.delay and c.kind == "kafka":
            self.broker.drop_delay_state()
        try:
            busy = machine.settle()
            proc = procs.start(consumer)
            if not proc.ready.wait(60):
                self.log(f"  ! {c.name} {scenario}: consumer not ready after 60 s")
            time.sleep(0.5)
            sent = procs.run(producer)
            result = procs.finish(proc, consumer.timeout + 30)
            if "error" in sent:
                result.setdefault("error", f"producer: {sent['error']}")
                result.setdefault("stderr", sent.get("stderr", ""))
            result["busy_before_pct"] = busy
            if "max_send_lag_ms" in sent:
                result["producer_max_lag_ms"] = sent["max_send_lag_ms"]
            self._record(c, scenario, rep, result)
            return result
        finally:
            self._cleanup(c, [consumer])
            if producer.delay and c.kind == "kafka":
                self.broker.drop_delay_state()

    def latency(
        self, c: Contender, rep: int, delay: float = 0.0, rate: int | None = None
    ) -> dict[str, Any]:
        rate = rate or self.s.rate
        scenario = "delay" if delay else "latency"
        if rate != self.s.rate:
            scenario += f"_{rate}"
        warmup = int(rate * self.s.latency_warmup_seconds)
        events = int(rate * self.s.latency_seconds)
        seconds = self.s.latency_seconds + self.s.latency_warmup_seconds
        consumer = self._job(
            c,
            "delay_consume" if delay else "latency_consume",
            f"{scenario}{rep}",
            events=events,
            warmup=warmup,
            rate=rate,
            timeout=seconds + delay + 15,
        )
        producer = replace(
            consumer,
            scenario="delay_produce" if delay else "latency_produce",
            delay=delay,
            timeout=seconds + 30,
        )
        return self._pair(c, consumer, producer, scenario, rep)

    def concurrency(self, c: Contender, level: int) -> None:
        events = self.s.concurrency_events if level > 1 else self.s.concurrency_slow_events
        job = self._job(
            c,
            "concurrency",
            f"c{level}",
            events=events,
            warmup=0,
            keys=100,
            concurrency=level,
            sleep=0.01,
        )
        self._prepare(c, job)
        try:
            busy = machine.settle()
            result = procs.run(job) | {"busy_before_pct": busy}
            self._record(c, f"concurrency_{level}", 0, result)
        finally:
            self._cleanup(c, [job])

    def idle(self, c: Contender) -> None:
        """CPU of an idle `tidings run` worker (joined, on an empty topic) over idle_seconds."""
        job = self._job(
            c,
            "idle",
            "idle",
            events=0,
            warmup=0,
            timeout=self.s.idle_seconds + 120,
            extra={"seconds": self.s.idle_seconds},
        )
        self._prepare(c, job)
        try:
            busy = machine.settle()
            result = procs.run(job) | {"busy_before_pct": busy}
            result.pop("rss_mb", None)
            result.pop("cpu_s", None)  # the harness process's, not the worker's
            self._record(c, "idle", 0, result)
        finally:
            self._cleanup(c, [job])

    def sqlite(self, rep: int) -> None:
        job = Job(
            contender="sqlite_ceiling",
            scenario="ceiling",
            data_dir=str(self.scratch / f"sqlite-{rep}"),
            events=self.s.events,
            warmup=self.s.warmup,
            size=self.s.size,
            keys=self.s.keys,
        )
        sqlite = Contender("sqlite", "sqlite_ceiling", "SQLite batched (ceiling)", "embedded")
        try:
            busy = machine.settle()
            result = procs.run(job) | {"busy_before_pct": busy}
            result.pop("rss_mb", None)
            self._record(sqlite, "ceiling", rep, result)
        finally:
            shutil.rmtree(job.data_dir, ignore_errors=True)

    def profile(self, out_dir: Path) -> dict[str, Any]:
        """Publish under cProfile, then consume it under pyinstrument and under cProfile."""
        c = CONTENDERS["tidings-kafka"]
        job = self._job(c, "publish", "profile")
        self._prepare(c, job)
        results: dict[str, Any] = {}
        scenarios = (
            ("benchmarks.profiling", "tidings_kafka_publish_cpu"),
            ("benchmarks.profiling", "tidings_kafka_consume"),
            ("benchmarks.profiling", "tidings_kafka_consume_cpu"),
            ("tidings_kafka", "profile_run"),  # `tidings run` under py-spy
        )
        try:
            for contender, scenario in scenarios:
                prof = replace(
                    job,
                    contender=contender,
                    scenario=scenario,
                    group=f"{job.group}-{scenario}",
                    extra={"out": str(out_dir)},
                )
                result = procs.run(prof)
                result.pop("stdout", None)
                results[scenario] = result
                if "error" in result:
                    break
            return results
        finally:
            self._cleanup(c, [job])


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3) if abs(v) < 100 else round(v)
    return v


def kafka_delays() -> dict[str, Any]:
    """Whether the Kafka backend's delays are committed (git), per the issue's rule."""
    path = "src/tidings/backends/kafka/delays.py"
    log = subprocess.run(
        ["git", "log", "-1", "--format=%h %s", "--", path],
        capture_output=True,
        text=True,
        cwd=procs.ROOT,
        check=False,
    ).stdout.strip()
    if log:
        return {"available": True, "commit": log}
    return {
        "available": False,
        "reason": f"no commit adds {path} yet (Kafka delays not landed): not measured",
    }
