"""Profile the tidings Kafka consume hot path: pyinstrument (wall) and cProfile (thread CPU).

tidings consumes on two Python threads: the poll thread (fetch from librdkafka, convert
records, hand batches to the loop) and the event loop thread (decode, validate, route, run
the handler, track commits). A profiler sees one thread, so every thread started during
the run gets its own (by patching `threading.Thread.run`):

- `tidings_kafka_consume`: pyinstrument per thread, HTML files and one text file. Wall time,
  so a thread waiting for the GIL shows the frame it waits in.
- `tidings_kafka_consume_cpu`: cProfile per thread timed by `time.thread_time`, i.e. CPU
  time only (GIL waits excluded); the top functions by own time, per thread. Deterministic
  profiling inflates many small calls, so read it for ranking, not absolute cost.
- `tidings_kafka_publish_cpu`: the same for `publish_many` (the calling thread).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from benchmarks.contenders import tidings_kafka
from benchmarks.contenders.tidings_app import publish
from benchmarks.workload import Job

NAME = "profile-tidings-kafka-consume"


def _role(thread: str) -> str:
    """A stable file name for a thread (poll threads are named after random groups)."""
    if thread.startswith("tidings-poll"):
        return "poll-thread"
    if thread == "tidings-bench":  # App.running()'s thread, named after the app
        return "event-loop-thread"
    return "".join(ch if ch.isalnum() else "-" for ch in thread).strip("-").lower()


def _per_thread(job: Job, wrap: Callable[[Callable[[], None], str], None]) -> dict[str, Any]:
    """Run tidings' Kafka consume with every new thread's `run` wrapped by `wrap`."""
    original = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        wrap(lambda: original(self), self.name)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    try:
        return tidings_kafka.consume(job)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]


def tidings_kafka_consume(job: Job) -> dict[str, Any]:
    out = Path(job.extra["out"])
    out.mkdir(parents=True, exist_ok=True)
    sessions: list[tuple[str, Profiler]] = []

    def wrap(run: Callable[[], None], name: str) -> None:
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            run()
        finally:
            profiler.stop()
            sessions.append((name, profiler))

    result = _per_thread(job, wrap)
    texts, files = [], []
    for name, profiler in sessions:
        session = profiler.last_session
        if session is None or session.duration < 0.5:
            continue
        html = out / f"{NAME}-{_role(name)}.html"
        html.write_text(profiler.output_html())
        files.append(str(html))
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        texts.append(f"===== thread {name} ({session.duration:.1f} s wall) =====\n{text}")
    txt = out / f"{NAME}.txt"
    txt.write_text("\n".join(texts))
    return {**result, "files": [str(txt), *files]}


def tidings_kafka_consume_cpu(job: Job) -> dict[str, Any]:
    out = Path(job.extra["out"])
    out.mkdir(parents=True, exist_ok=True)
    stats: list[tuple[str, cProfile.Profile, float]] = []

    def wrap(run: Callable[[], None], name: str) -> None:
        profiler = cProfile.Profile(time.thread_time)
        start = time.thread_time()
        profiler.enable()
        try:
            run()
        finally:
            profiler.disable()
            stats.append((name, profiler, time.thread_time() - start))

    result = _per_thread(job, wrap)
    txt = out / f"{NAME}-cpu.txt"
    txt.write_text(_cpu_text(stats))
    return {**result, "files": [str(txt)]}


def tidings_kafka_publish_cpu(job: Job) -> dict[str, Any]:
    """publish_many on Kafka under cProfile (thread CPU time) on the calling thread."""
    out = Path(job.extra["out"])
    out.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile(time.thread_time)
    cpu: list[float] = []

    @contextmanager
    def timed() -> Iterator[None]:
        start = time.thread_time()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            cpu.append(time.thread_time() - start)

    result = publish(tidings_kafka.url(job), job, timed)
    stats = [("main (publish_many, measured part)", profiler, cpu[0])]
    txt = out / "profile-tidings-kafka-publish-cpu.txt"
    txt.write_text(_cpu_text(stats))
    return {**result, "files": [str(txt)]}


def _cpu_text(stats: list[tuple[str, cProfile.Profile, float]]) -> str:
    texts = []
    for name, profiler, cpu in stats:
        if cpu < 0.2:
            continue
        buf = io.StringIO()
        ps = pstats.Stats(profiler, stream=buf)
        ps.strip_dirs().sort_stats("tottime").print_stats(30)
        buf.write("  calls of interest (flow control and commits):\n")
        ps.print_stats(r"pause|resume|commit\b|seek|_apply_pauses|take_committable")
        texts.append(f"===== thread {name}: {cpu:.2f} s CPU =====\n{buf.getvalue()}")
    return "\n".join(texts)
