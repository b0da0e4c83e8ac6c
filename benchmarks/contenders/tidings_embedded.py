"""tidings on its embedded backend (SQLite WAL in `job.data_dir`)."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import tidings_app
from benchmarks.workload import Job


def url(job: Job) -> str:
    return f"embedded://{job.data_dir}"


def __getattr__(name: str) -> Any:
    """Every scenario is tidings_app's, run against this backend's URL."""
    return tidings_app.scenario(name, url)
