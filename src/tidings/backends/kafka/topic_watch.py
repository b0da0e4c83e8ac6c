"""Notice a consumed topic being deleted, or deleted and created again, and say so once.

Kafka gives every topic an id (KIP-516) that changes when a topic of the same name is
created again. A consumer that missed the deletion keeps its fetch positions and would
read (and commit) the new topic from the old topic's offsets, silently skipping its first
events. `TopicWatch` looks the ids of the consumed topics up every `CHECK_INTERVAL`
seconds; the consumer restarts the partitions of a topic whose id changed from their
earliest offset. Commits carry the topic id in their metadata, so a group returning to a
recreated topic recognizes offsets committed for the old one.

While a consumed topic is gone, the consumer logs "topic T was deleted; waiting for it"
once, instead of a failed commit or fetch every few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

LOG = logging.getLogger("tidings.kafka")

CHECK_INTERVAL: Final = 5.0
"""Seconds between two lookups of the consumed topics' ids."""
LOOKUP_TIMEOUT: Final = 2.0
"""Seconds a lookup may take (it runs on the poll thread); a failed one is tried later."""
METADATA_PREFIX: Final = "tidings-topic-id="
"""Commit metadata: the id of the topic the offset was committed for."""

TopicIds = Callable[[Sequence[str], float], dict[str, str]]
"""Look up the ids of the topics that exist (see `KafkaAdmin.topic_ids`)."""


class TopicWatch:
    """The consumed topics' ids and which of them are gone; used from the poll thread."""

    def __init__(self, lookup: TopicIds, who: str) -> None:
        self._lookup = lookup
        self._who = who
        self.ids: dict[str, str] = {}
        self.gone: set[str] = set()
        self._next_check = time.monotonic() + CHECK_INTERVAL

    def learn(self, topics: Iterable[str]) -> None:
        """Look up the ids of `topics` (at assignment: the partitions start afresh)."""
        names = sorted(set(topics))
        if names:
            self._query(names)

    def due(self) -> bool:
        return time.monotonic() >= self._next_check

    def check(self, topics: Iterable[str]) -> list[str]:
        """Look the ids up again; return the topics that were recreated since last time."""
        self._next_check = time.monotonic() + CHECK_INTERVAL
        names = sorted(set(topics) | self.gone)
        before = {t: self.ids.get(t) for t in names}
        found = self._query(names)
        if found is None:
            return []
        recreated = []
        for topic in names:
            new, old = found.get(topic), before[topic]
            if new is None:
                self.mark_gone(topic)
                continue
            if topic in self.gone:
                self.gone.discard(topic)
                LOG.warning("%s: topic %s exists again.", self._who, topic)
            if old is not None and new != old:
                recreated.append(topic)
        return recreated

    def _query(self, topics: Sequence[str]) -> dict[str, str] | None:
        try:
            found = self._lookup(topics, LOOKUP_TIMEOUT)
        except Exception as exc:  # a broker outage: the next check tries again
            LOG.debug("%s: cannot look up topic ids: %s", self._who, exc)
            return None
        self.ids.update(found)
        return found

    def mark_gone(self, topic: str) -> None:
        """Note that `topic` does not exist (said once, until it exists again)."""
        if topic not in self.gone:
            self.gone.add(topic)
            LOG.warning(
                "%s: topic %s was deleted; waiting for it (when it is created again, its "
                "partitions are read from their earliest offset).",
                self._who,
                topic,
            )
            self._next_check = min(self._next_check, time.monotonic() + 1.0)

    def metadata(self, topic: str) -> str | None:
        """The commit metadata for an offset of `topic`: its id, when known."""
        topic_id = self.ids.get(topic)
        return None if topic_id is None else METADATA_PREFIX + topic_id

    def committed_for_another(self, topic: str, metadata: str | None) -> bool:
        """Whether an offset committed with `metadata` belongs to an earlier `topic`."""
        topic_id = self.ids.get(topic)
        if topic_id is None or not metadata or not metadata.startswith(METADATA_PREFIX):
            return False
        return metadata.removeprefix(METADATA_PREFIX) != topic_id
