"""tidings as users run it: `tidings run benchmarks.contenders.run_app:app`, a process of
its own at the default settings (the app is in `run_app`).

- `consume_run`: the consume scenario through the CLI. Figures: CPU of every thread over
  the measured window (read inside the process, like every other contender's), the whole
  process's CPU from `wait4`, peak RSS, and the time from starting the command to its first
  handled event (import, connect, join, first fetch).
- `profile_run`: `consume_run` under py-spy, summarized into a text file.
- `idle`: a worker on an empty topic, its CPU over `job.extra["seconds"]` (default 30)
  once it has joined, from ``/proc/<pid>/stat`` (utime + stime), with each thread's share
  (``/proc/<pid>/task/*/stat``; librdkafka names its threads ``rdk:*``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.workload import Job

APP = "benchmarks.contenders.run_app:app"
TICK = os.sysconf("SC_CLK_TCK")


def tidings_argv() -> list[str]:
    """The `tidings` command users run (the console script next to this Python)."""
    script = Path(sys.executable).with_name("tidings")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tidings.cli"]


def _start(
    url: str, env: dict[str, str], stderr: Any, prefix: list[str] | None = None
) -> subprocess.Popen[bytes]:
    argv = [*(prefix or []), *tidings_argv(), "run", APP, "--broker", url]
    return subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr
    )


def consume_run(url: str, job: Job, prefix: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidings-run-") as tmp:
        out = Path(tmp) / "figures.json"
        err = Path(tmp) / "stderr.txt"
        env = {
            "BENCH_TOPIC": job.topic,
            "BENCH_PARTITIONS": str(job.partitions),
            "BENCH_GROUP": job.group,
            "BENCH_WARMUP": str(job.warmup),
            "BENCH_TOTAL": str(job.total),
            "BENCH_OUT": str(out),
        }
        started = time.time()
        with err.open("w") as stderr:
            proc = _start(url, env, stderr, prefix)
            status, usage = _reap(proc.pid, job.timeout)
        if not out.exists():
            tail = err.read_text()[-1500:]
            return {"error": f"tidings run gave no figures (exit {status})", "stderr": tail}
        figures: dict[str, Any] = json.loads(out.read_text())
        figures["startup_to_first_event_s"] = figures.pop("first_event_at") - started
        figures["run_cpu_s"] = usage.ru_utime + usage.ru_stime
        figures["run_rss_mb"] = figures.pop("rss_mb")
        figures["exit_code"] = os.waitstatus_to_exitcode(status)
        return figures


def idle(url: str, job: Job) -> dict[str, Any]:
    seconds = float(job.extra.get("seconds", 30.0))
    with tempfile.TemporaryDirectory(prefix="tidings-idle-") as tmp:
        err = Path(tmp) / "stderr.txt"
        env = {
            "BENCH_TOPIC": job.topic,
            "BENCH_PARTITIONS": str(job.partitions),
            "BENCH_GROUP": job.group or f"g-idle-{uuid.uuid4().hex[:8]}",
            "BENCH_TOTAL": str(1 << 62),
        }
        with err.open("w") as stderr:
            proc = _start(url, env, stderr)
            try:
                joined = _wait_joined(proc, err, 60.0)
                time.sleep(2.0)  # the first commits and metadata refreshes after joining
                before, cpu0, t0 = _threads(proc.pid), _cpu(proc.pid), time.monotonic()
                time.sleep(seconds)
                after, cpu1, t1 = _threads(proc.pid), _cpu(proc.pid), time.monotonic()
            finally:
                proc.send_signal(signal.SIGTERM)
                status, _ = _reap(proc.pid, 60.0)
        if not joined:
            return {"error": "tidings run did not join in 60 s", "stderr": err.read_text()[-1500:]}
        span = t1 - t0
        by_name: Counter[str] = Counter()
        for tid, (name, cpu) in after.items():
            by_name[name] += cpu - before.get(tid, (name, 0.0))[1]
        return {
            "seconds": span,
            "idle_cpu_s": cpu1 - cpu0,
            "idle_cpu_pct": (cpu1 - cpu0) / span * 100,
            "threads": len(after),
            "by_thread_pct": {n: round(c / span * 100, 3) for n, c in by_name.most_common()},
            "exit_code": os.waitstatus_to_exitcode(status),
        }


def _wait_joined(proc: subprocess.Popen[bytes], err: Path, timeout: float) -> bool:
    """Wait until the worker logs its assignment (``group ...: assigned ...``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ": assigned " in err.read_text():
            return True
        time.sleep(0.1)
    return False


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _threads(pid: int) -> dict[str, tuple[str, float]]:
    """CPU seconds so far of each thread of `pid`, by thread id, with its name."""
    out: dict[str, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _reap(pid: int, timeout: float) -> tuple[int, Any]:
    """Wait for `pid` (SIGKILL after `timeout` s); return its wait status and rusage."""
    deadline = time.monotonic() + timeout
    while True:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return status, usage
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        time.sleep(0.02)


def profile_run(url: str, job: Job) -> dict[str, Any]:
    """`consume_run` under py-spy (sampling, only samples holding the GIL: Python CPU).

    Writes ``profile-tidings-run-<backend>.txt`` to ``job.extra["out"]``: each thread's
    share of the samples and the functions they were in (own samples, and including
    callees), so where `tidings run` spends its Python CPU per event can be read without a
    profiler's overhead distorting it much (py-spy samples from outside the process).
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out_dir = Path(job.extra["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    backend = url.split(":", 1)[0]
    with tempfile.TemporaryDirectory(prefix="tidings-spy-") as tmp:
        raw = Path(tmp) / "samples.txt"
        prefix = [spy, "record", "--gil", "--threads", "-f", "raw", "-r", "200", "-o", str(raw)]
        figures = consume_run(url, job, prefix=[*prefix, "--"])
        if "error" in figures:
            return figures
        text = summarize_samples(raw.read_text(), figures)
    (out_dir / f"profile-tidings-run-{backend}.txt").write_text(text)
    return figures


def summarize_samples(raw: str, figures: dict[str, Any], top: int = 30) -> str:
    """py-spy's raw (collapsed stack) output as shares per thread, function and line."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    lines_: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[re.sub(r"\s*\((0x[0-9a-f]+|\d+)\)", "", frames[0])] += n
        named = [_function(f) for f in frames[1:]]
        if named:
            own[named[-1][0]] += n
            lines_[named[-1][1]] += n
        for name in {name for name, _, path in named if _ours(path)}:
            inclusive[name] += n
    total = total or 1

    def shares(counts: Counter[str]) -> list[str]:
        return [f"  {n / total:6.1%}  {name}" for name, n in counts.most_common(top)]

    return (
        "\n".join(
            [
                "tidings run, py-spy --gil (samples taken while a thread held the GIL), "
                f"{total} samples; figures: {json.dumps(figures)}",
                "",
                "threads:",
                *shares(Counter(dict(threads.most_common(10)))),
                "",
                f"own samples by function (top {top}):",
                *shares(own),
                "",
                f"own samples by line (top {top}):",
                *shares(lines_),
                "",
                f"including callees, tidings functions (top {top}):",
                *shares(inclusive),
            ]
        )
        + "\n"
    )


def _ours(path: str) -> bool:
    return path.startswith("tidings/") or "/tidings/" in path


def _function(frame: str) -> tuple[str, str, str]:
    """``func (path/to/module.py:12)`` as (``func (package/module.py)``, with the line, path)."""
    found = re.match(r"(.*) \((.*?)(?::(\d+))?\)$", frame)
    if found is None:
        return frame, frame, ""
    func, path, line = found.groups()
    short = "/".join(Path(path).parts[-2:])
    return f"{func} ({short})", f"{func} ({short}:{line})", path
