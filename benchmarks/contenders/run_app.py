"""The app `tidings run benchmarks.contenders.run_app:app` runs in the `consume_run` scenario.

Configured by environment (set by `tidings_app.consume_run`): ``BENCH_TOPIC``,
``BENCH_PARTITIONS``, ``BENCH_GROUP``, ``BENCH_WARMUP``, ``BENCH_TOTAL`` and ``BENCH_OUT``
(a JSON file this process writes its figures to). The handler is an async no-op annotated
with the event class, as a user writes it; it counts events, reads the process's CPU time
(every thread) when the warm-up is done and at the last event, writes the figures and
sends itself SIGTERM, so `tidings run` stops the way it stops in production.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from pathlib import Path

from benchmarks.workload import AccountEvent
from tidings import App

TOPIC = os.environ.get("BENCH_TOPIC", "bench-run")
WARMUP = int(os.environ.get("BENCH_WARMUP", "0"))
TOTAL = int(os.environ.get("BENCH_TOTAL", "1"))
OUT = os.environ.get("BENCH_OUT", "")

app = App("bench-run")
topic = app.topic(TOPIC, partitions=int(os.environ.get("BENCH_PARTITIONS", "6")))


class Meter:
    """Counts handled events; marks wall and CPU time at the first, warm-up and last.

    It also times the garbage collector (`gc.callbacks`, CPU of the collecting thread), so
    the figures say how much of the CPU per event is collection.
    """

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.marks: list[tuple[float, float]] = []  # (perf_counter, process_time)
        self.gc_s = 0.0
        self.gc_runs = [0, 0, 0]
        self._gc_at = 0.0
        self._gc_mark = 0.0
        self._runs_mark = [0, 0, 0]

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_at = time.thread_time()
        else:
            self.gc_s += time.thread_time() - self._gc_at
            self.gc_runs[info["generation"]] += 1

    def tick(self) -> None:
        self.count += 1
        n = self.count
        if n == 1:
            self.first = time.time()
        if n in (WARMUP, TOTAL):
            self.marks.append((time.perf_counter(), time.process_time()))
            if n == WARMUP:
                self._gc_mark = self.gc_s
                self._runs_mark = list(self.gc_runs)
            if n == TOTAL:
                self.done()

    def done(self) -> None:
        (w0, c0), (w1, c1) = self.marks[0], self.marks[-1]
        measured = TOTAL - WARMUP
        figures = {
            "events": measured,
            "seconds": w1 - w0,
            "events_per_s": measured / (w1 - w0) if w1 > w0 else 0.0,
            "cpu_window_s": c1 - c0,
            "gc_window_s": self.gc_s - self._gc_mark,
            "gc_window_collections": [
                a - b for a, b in zip(self.gc_runs, self._runs_mark, strict=True)
            ],
            "first_event_at": self.first,
            "cpu_total_s": time.process_time(),
            "rss_mb": _peak_rss_mb(),
            "count": n if (n := self.count) else 0,
        }
        if OUT:
            Path(OUT).write_text(json.dumps(figures))
        os.kill(os.getpid(), signal.SIGTERM)


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


meter = Meter()
gc.callbacks.append(meter.on_gc)
if WARMUP == 0:
    meter.marks.append((time.perf_counter(), time.process_time()))


@app.consumer(topic, group=os.environ.get("BENCH_GROUP", "bench-run"))
async def noop(event: AccountEvent) -> None:
    meter.tick()
