"""Subprocesses with per-process peak RSS and CPU time (``wait4``), and a READY handshake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workload import Job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV: dict[str, str] = {}
"""Extra environment for every child (the runner points PYTHONPATH at a source snapshot)."""


@dataclass
class Proc:
    """A running child; stdout lines are collected by a reader thread."""

    popen: subprocess.Popen[str]
    stderr: Any
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line == "READY":
                self.ready.set()
        self.ready.set()


def spawn(argv: list[str], env: dict[str, str] | None = None) -> Proc:
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by `finish`
    popen = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {}), **ENV},
    )
    proc = Proc(popen, err)
    threading.Thread(target=proc._read, daemon=True).start()
    return proc


def start(job: Job, env: dict[str, str] | None = None) -> Proc:
    """Start `job` in a worker subprocess."""
    return spawn([sys.executable, "-m", "benchmarks.worker", job.to_json()], env)


def finish(proc: Proc, timeout: float) -> dict[str, Any]:
    """Wait for the child (killing it after `timeout` s); return its result and resources."""
    pid = proc.popen.pid
    deadline = time.monotonic() + timeout
    status, usage = 0, None
    while True:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    proc.popen.returncode = os.waitstatus_to_exitcode(status)
    if proc.popen.stdout is not None:
        proc.popen.stdout.close()
    out: dict[str, Any] = {}
    results = [line for line in proc.lines if line.startswith("RESULT ")]
    if results:
        out = json.loads(results[-1][len("RESULT ") :])
    else:
        out = {"error": f"no result (exit {proc.popen.returncode}, timeout {timeout:.0f}s)"}
    if "error" in out:
        proc.stderr.seek(0)
        out["stderr"] = proc.stderr.read()[-2000:]
    proc.stderr.close()
    out["stdout"] = [line for line in proc.lines if not line.startswith(("RESULT ", "READY"))]
    out["rss_mb"] = usage.ru_maxrss / 1024
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    return out


def run(job: Job, timeout: float | None = None) -> dict[str, Any]:
    """Run `job` in a subprocess to completion."""
    return finish(start(job), timeout or job.timeout + 60)


def run_argv(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run any command; return its stdout lines and resources (for Kafka's tools)."""
    return finish(spawn(argv, env), timeout)
