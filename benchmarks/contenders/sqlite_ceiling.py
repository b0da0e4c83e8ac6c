"""SQLite's own batched insert and read rates on the embedded backend's disk: its ceiling.

A table like a partition log (offset, key, value, headers), WAL with synchronous=NORMAL
(the embedded backend's default), `executemany` of 5,000 rows per transaction; then reads
every row back in chunks of 500 by offset. No JSON or validation: the storage ceiling.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from benchmarks.workload import Job, dicts, encode

CHUNK = 5_000
READ = 500
HEADERS = b"ce_specversion=1.0;ce_type=bench.AccountUpdated;content-type=application/json" * 3


def ceiling(job: Job) -> dict[str, Any]:
    os.makedirs(job.data_dir, exist_ok=True)
    db = sqlite3.connect(os.path.join(job.data_dir, "ceiling.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE log (off INTEGER PRIMARY KEY, key BLOB, value BLOB, headers BLOB, ts REAL)"
    )
    rows = [
        (i, d["account_id"].encode(), encode(d), HEADERS, time.time())
        for i, d in enumerate(dicts(job))
    ]

    def insert(batch: list[tuple[Any, ...]]) -> None:
        for i in range(0, len(batch), CHUNK):
            db.execute("BEGIN")
            db.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?)", batch[i : i + CHUNK])
            db.execute("COMMIT")

    insert(rows[: job.warmup])
    t0 = time.perf_counter()
    insert(rows[job.warmup :])
    write = time.perf_counter() - t0
    db.close()

    db = sqlite3.connect(os.path.join(job.data_dir, "ceiling.db"), isolation_level=None)
    t0 = time.perf_counter()
    got, after = 0, job.warmup - 1
    while True:
        chunk = db.execute(
            "SELECT off, key, value, headers, ts FROM log WHERE off > ? ORDER BY off LIMIT ?",
            (after, READ),
        ).fetchall()
        if not chunk:
            break
        got += len(chunk)
        after = chunk[-1][0]
    read = time.perf_counter() - t0
    db.close()
    return {
        "insert_per_s": job.events / write,
        "read_per_s": got / read,
        "insert_mb_per_s": sum(len(r[2]) for r in rows[job.warmup :]) / write / 1e6,
    }
