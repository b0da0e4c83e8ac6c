"""What the results depend on: the machine, the disk, the versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

from benchmarks.broker import kafka_version
from benchmarks.procs import ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def fsync_probe(directory: str, seconds: float = 2.0) -> dict[str, float]:
    """fdatasync after each 4 KiB append (protocol 5.7): the disk's sync latency."""
    path = os.path.join(directory, "fsync-probe")
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n, t0 = 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            os.write(fd, block)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    dt = time.perf_counter() - t0
    return {"fdatasync_per_s": n / dt, "fdatasync_us": dt / n * 1e6}


def machine(data_dir: str) -> dict[str, Any]:
    mem = psutil.virtual_memory()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(mem.total / 2**30, 1),
        "kernel": platform.release(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "n/a",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "disk": fsync_probe(data_dir),
        "data_dir": data_dir,
    }


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _java() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else "?"


def _git() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def uncommitted_src() -> list[str]:
    """Files under src/ that differ from the commit measured (others' work in progress)."""
    out = subprocess.run(
        ["git", "status", "--short", "--", "src"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def versions() -> dict[str, Any]:
    import confluent_kafka

    return {
        "python": sys.version.split()[0],
        "tidings": f"{_pkg('tidings')} ({_git()})",
        "confluent-kafka": _pkg("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "aiokafka": _pkg("aiokafka"),
        "faststream": _pkg("faststream"),
        "pydantic": _pkg("pydantic"),
        "kafka": kafka_version(),
        "java": _java(),
        "tidings_uncommitted_src": uncommitted_src(),
    }


def busy_percent(seconds: float = 0.3) -> float:
    """System-wide CPU use over `seconds` (0-100), to flag a machine that is not quiet."""
    return float(psutil.cpu_percent(interval=seconds))


def settle(threshold: float = 25.0, max_wait: float = 1.0) -> float:
    """Wait (up to `max_wait` s) for CPU use below `threshold`; return the last reading."""
    deadline = time.monotonic() + max_wait
    busy = busy_percent()
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_percent()
    return busy
