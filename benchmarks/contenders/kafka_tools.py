"""Kafka's own perf tools (Java client): the practical ceiling on this machine.

ProducerPerformance sends `total` records picked from a file of the workload's own JSON
events (same size, no JSON work in the client); ConsumerPerformance reads them back in a
fresh group. Both run through ``scripts/kafka tool``; their summary lines are parsed. The
tools have no warm-up option, so their figures include JIT warm-up (a conservative ceiling).
"""

from __future__ import annotations

import re
import tempfile
from typing import Any

from benchmarks import procs
from benchmarks.broker import Broker
from benchmarks.workload import Job, dicts, encode

PRODUCER = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER = "org.apache.kafka.tools.ConsumerPerformance"
_SENT = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def publish(broker: Broker, job: Job) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as payloads:
        for doc in dicts(job, 1000):
            payloads.write(encode(doc).decode() + "\n")
        payloads.flush()
        argv = broker.tool_argv(
            PRODUCER,
            "--topic",
            job.topic,
            "--num-records",
            str(job.total),
            "--throughput",
            "-1",
            "--payload-file",
            payloads.name,
            "--producer-props",
            f"bootstrap.servers={job.bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
            "batch.size=1048576",
        )
        out = procs.run_argv(argv, job.timeout, broker.env)
    found = [m for line in out["stdout"] if (m := _SENT.search(line))]
    if not found:
        return {"error": "no summary line", "stdout": out["stdout"][-5:]}
    _, rate, mb = found[-1].groups()
    return {"events_per_s": float(rate), "mb_per_s": float(mb) * 1.048576, "cpu_s": out["cpu_s"]}


def consume(broker: Broker, job: Job) -> dict[str, Any]:
    argv = broker.tool_argv(
        CONSUMER,
        "--bootstrap-server",
        job.bootstrap,
        "--topic",
        job.topic,
        "--messages",
        str(job.total),
        "--group",
        job.group,
        "--timeout",
        str(int(job.timeout * 1000)),
    )
    out = procs.run_argv(argv, job.timeout + 60, broker.env)
    lines = out["stdout"]
    try:
        header = next(i for i, line in enumerate(lines) if line.startswith("start.time"))
        names = [n.strip() for n in lines[header].split(",")]
        values = [v.strip() for v in lines[header + 1].split(",")]
        row = dict(zip(names, values, strict=True))
    except (StopIteration, IndexError, ValueError):
        return {"error": "no summary line", "stdout": lines[-5:]}
    return {
        "events_per_s": float(row["fetch.nMsg.sec"]),
        "mb_per_s": float(row["fetch.MB.sec"]) * 1.048576,
        "join_s": float(row["rebalance.time.ms"]) / 1000,
        "rss_mb": out["rss_mb"],
        "cpu_s": out["cpu_s"],
    }
