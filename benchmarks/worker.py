"""Run one scenario of one contender in this (sub)process and print its result.

    python -m benchmarks.worker '<Job as JSON>'

The last stdout line is ``RESULT <json>``. Consumers that must be listening before a
producer starts print ``READY`` once they are (see `ready`). The parent measures this
process's peak RSS and CPU time with ``wait4``.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any

from benchmarks.workload import Job

_ready = False


def ready() -> None:
    """Tell the parent this consumer is listening (printed once)."""
    global _ready
    if not _ready:
        _ready = True
        print("READY", flush=True)


def run(job: Job) -> dict[str, Any]:
    name = job.contender
    module = importlib.import_module(name if "." in name else f"benchmarks.contenders.{name}")
    scenario = getattr(module, job.scenario)
    result: dict[str, Any] = scenario(job)
    return result


def main() -> None:
    job = Job.from_json(sys.argv[1])
    try:
        result = run(job)
    except Exception as exc:  # reported to the parent, which records the failure
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    ready()  # never leave the parent waiting
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
