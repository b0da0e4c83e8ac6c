"""Every exit of a handler becomes one Outcome; the route acts on it."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    """What happened to one delivery of an event."""

    ACK = "ack"
    """Handled; its offset may be committed."""
    SKIP = "skip"
    """Not for this consumer (other type, or replayed for another group); committed."""
    RETRY = "retry"
    """Failed; tried again after a backoff, holding back only later events of its key."""
    DEAD_LETTER = "dead_letter"
    """Failed for good, or undecodable; written to the group's dead-letter topic, committed."""
    STOP = "stop"
    """Failed for good with dead letters off: the partition stops here, nothing is skipped."""
