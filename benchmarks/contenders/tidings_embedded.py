"""tidings on its embedded backend (SQLite WAL in `job.data_dir`).

`consume_sqlite` is the embedded backend's plain peer: a SQLite read loop over the same
store file (500 rows per query, partition by partition, as tidings fetches) validating each
value with `Account.model_validate_json` and calling a no-op handler: what tidings does per
event, without the framework.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from benchmarks import measure
from benchmarks.contenders import tidings_app
from benchmarks.workload import Account, Job

READ = 500
OFFSET_BITS = 40  # tidings.backends.embedded.schema.OFFSET_BITS


def url(job: Job) -> str:
    return f"embedded://{job.data_dir}"


def handle(event: Account) -> None:
    """The no-op handler."""


def consume_sqlite(job: Job) -> dict[str, Any]:
    drain = measure.Drain(job.warmup, job.total)
    db = sqlite3.connect(Path(job.data_dir) / "tidings.db", isolation_level=None)
    pids = [
        pid
        for (pid,) in db.execute(
            "SELECT pid FROM partitions WHERE topic = ? ORDER BY partition", (job.topic,)
        )
    ]
    validate = Account.model_validate_json
    query = "SELECT pos, value FROM records WHERE pos >= ? AND pos < ? ORDER BY pos LIMIT ?"
    for pid in pids:
        pos, end = pid << OFFSET_BITS, (pid + 1) << OFFSET_BITS
        while True:
            rows = db.execute(query, (pos, end, READ)).fetchall()
            if not rows:
                break
            for _, value in rows:
                handle(validate(value))
                drain.tick()
            pos = rows[-1][0] + 1
    db.close()
    return drain.result()


def __getattr__(name: str) -> Any:
    """Every other scenario is tidings_app's, run against this backend's URL."""
    return tidings_app.scenario(name, url)
