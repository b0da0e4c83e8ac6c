"""Pause and resume a group through the broker: control records on `tidings.control`.

`tidings dashboard --allow-actions` appends ``{"group": G, "paused": true|false}`` keyed by
the group. Every runner reads the topic before each status snapshot (so within
`status_interval`, 5 s by default) and holds or releases the group's fetching: running
handlers finish, nothing new is fetched while paused, and the state survives restarts (a
worker that starts later reads it too). The newest record per group wins; the topic is
compacted on Kafka and kept whole on the other brokers (one small record per action).
"""

from __future__ import annotations

import json
import time

from tidings.records import OutgoingRecord, Record, TopicSpec

CONTROL_TOPIC = "tidings.control"
CONTROL_SPEC = TopicSpec(name=CONTROL_TOPIC, partitions=1, config=(("cleanup.policy", "compact"),))


def control_record(group: str, *, paused: bool, by: str) -> OutgoingRecord:
    """Return the record that pauses (or resumes) `group`, saying who asked."""
    value = {"group": group, "paused": paused, "by": by, "at": time.time()}
    return OutgoingRecord(CONTROL_TOPIC, group.encode(), json.dumps(value).encode(), partition=0)


def read_control(record: Record) -> tuple[str, bool] | None:
    """Return (group, paused) from a control record; None for anything else."""
    if record.key is None or not record.value:
        return None
    try:
        doc = json.loads(record.value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("paused"), bool):
        return None
    return record.key.decode("utf-8", "replace"), doc["paused"]
