"""Profile the tidings Kafka consume hot path with pyinstrument, one profile per thread.

tidings consumes on two Python threads: the poll thread (fetch from librdkafka, convert
records, commit) and the event loop thread (decode, validate, route, run the handler,
track commits). pyinstrument profiles one thread per profiler, so every thread started
during the run gets its own (by patching `threading.Thread.run`); each is written as HTML
and text, and the text of all is concatenated into one file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from benchmarks.contenders import tidings_kafka
from benchmarks.workload import Job

NAME = "profile-tidings-kafka-consume"


def _role(thread: str) -> str:
    """A stable file name for a thread (poll threads are named after random groups)."""
    if thread.startswith("tidings-poll"):
        return "poll-thread"
    if thread == "tidings-bench":  # App.running()'s thread, named after the app
        return "event-loop-thread"
    return "".join(ch if ch.isalnum() else "-" for ch in thread).strip("-").lower()


def tidings_kafka_consume(job: Job) -> dict[str, Any]:
    out = Path(job.extra["out"])
    out.mkdir(parents=True, exist_ok=True)
    sessions: list[tuple[str, Profiler]] = []
    original = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            original(self)
        finally:
            profiler.stop()
            sessions.append((self.name, profiler))

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    try:
        result = tidings_kafka.consume(job)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    texts = []
    files = []
    for name, profiler in sessions:
        session = profiler.last_session
        if session is None or session.duration < 0.5:
            continue
        slug = _role(name)
        html = out / f"{NAME}-{slug}.html"
        html.write_text(profiler.output_html())
        files.append(str(html))
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        texts.append(f"===== thread {name} ({session.duration:.1f} s) =====\n{text}")
    txt = out / f"{NAME}.txt"
    txt.write_text("\n".join(texts))
    return {**result, "files": [str(txt), *files]}
