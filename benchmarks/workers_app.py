"""The app `benchmarks.workers` runs with `tidings run --workers N`: decode, validate, no-op."""

from __future__ import annotations

import asyncio
import os

from tidings import App, Event

GATE = os.environ.get("BW_GATE", "")
"""A file: handlers wait until it exists, so every worker has joined before work starts."""
_open = not GATE

app = App("bench-workers", status_interval=None)
ticks = app.topic(os.environ.get("BW_TOPIC", "bench-workers"), partitions=4)


class BenchWorkerTick(Event):
    seq: int
    account_id: str
    note: str


@app.consumer(ticks, group=os.environ.get("BW_GROUP", "bench-workers"))
async def handle(event: BenchWorkerTick) -> None:
    global _open
    while not _open:
        if os.path.exists(GATE):
            _open = True
        else:
            await asyncio.sleep(0.02)
