"""Topics, offsets and consumer groups through librdkafka's AdminClient.

Every call is bounded by the backend's `connect_timeout`: a broker that does not answer
raises `BrokerUnavailable`, never a hang. The AdminClient is thread-safe and shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, TypeVar

from confluent_kafka import (
    KafkaError,
    KafkaException,
    TopicCollection,
)
from confluent_kafka import TopicPartition as KafkaTP

# These are documented public names; the stubs just do not re-export them.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from tidings.backends.base import TopicInfo
from tidings.backends.kafka.config import KafkaSettings, config_error
from tidings.backends.kafka.errors import broker_unavailable, kafka_error, translate
from tidings.backends.kafka.replicas import check_brokers, check_existing, with_durability
from tidings.exceptions import BrokerError, ConfigurationError, TopicNotFound
from tidings.records import TopicPartition, TopicSpec
from tidings.replication import MIN_INSYNC
from tidings.topics import check_declaration, conflict_message, differences

T = TypeVar("T")
LOG = logging.getLogger("tidings.kafka")

EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]

MISSING = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
)
LEADERLESS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._NO_OFFSET,
        KafkaError._NOENT,  # "Failed to query partition leaders: No leaders found" (fresh topic)
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)
REFUSED_CONFIG = frozenset(
    {
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.POLICY_VIOLATION,
    }
)
SLOW_OFFSETS = 1.0
LEADERLESS_PATIENCE = 2.0
"""Seconds a listing that may leave topics out (`missing_ok`) waits for leaders to be
known before it lists topic by topic and leaves out those still without leaders."""
"""Seconds of offset lookups after which `topics` reads the replica state again."""
CONFIG_TRY = 2.0
"""Seconds one try at describing topic configs may take (see `topic_configs`)."""
INTERNAL_TOPIC_PREFIXES = ("__", "tidings.delay.")
INTERNAL_GROUP_PREFIX = "tidings."


def is_internal_topic(name: str) -> bool:
    return name.startswith(INTERNAL_TOPIC_PREFIXES)


class KafkaAdmin:
    """The admin half of `KafkaBackend`: metadata, topic creation, offsets and groups."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: AdminClient | None = None
        self.known_topics: dict[str, int] = {}
        """Partition counts of topics seen to exist (forgotten when found deleted)."""
        self.declared: dict[str, TopicSpec] = {}
        """Topics this admin created or checked, with the replication and config they have."""
        self.url = f"kafka://{settings.servers}"

    @property
    def client(self) -> AdminClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = AdminClient(self.settings.admin_config())  # type: ignore[arg-type]
                except (KafkaException, TypeError, ValueError) as exc:
                    raise config_error(exc, self.settings, "admin client") from exc
            return self._client

    def wait(self, future: Future[T], action: str) -> T:
        timeout = self.settings.connect_timeout
        try:
            return future.result(timeout=timeout + 5)
        except FutureTimeout as exc:
            raise broker_unavailable(self.settings.servers, timeout, action) from exc
        except KafkaException as exc:
            raise translate(exc, action, self.settings.servers, timeout) from exc

    def metadata(self, topic: str | None = None) -> ClusterMetadata:
        """Fetch cluster metadata, proving a broker answers; raises BrokerUnavailable."""
        timeout = self.settings.connect_timeout
        try:
            md = self.client.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise translate(exc, "fetch metadata", self.settings.servers, timeout) from exc
        for name, tmd in md.topics.items():
            if tmd.error is None and tmd.partitions:
                self.known_topics[name] = len(tmd.partitions)
        return md

    def topic_ids(self, topics: Sequence[str], timeout: float) -> dict[str, str]:
        """Return the topic id (KIP-516) of each topic that exists; a recreated topic gets
        a new one. Topics that do not exist are left out.

        Raises:
            KafkaException: the broker did not answer within `timeout` seconds.
        """
        if not topics:
            return {}
        futures = self.client.describe_topics(
            TopicCollection(list(topics)), request_timeout=timeout
        )
        out: dict[str, str] = {}
        for name, future in futures.items():
            try:
                out[name] = str(future.result(timeout=timeout + 1).topic_id)
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is None or err.code() not in MISSING:
                    raise
        return out

    # -- topics --------------------------------------------------------------------------

    def ensure_topics(self, specs: Sequence[TopicSpec], *, implicit: bool = False) -> None:
        """Create the missing topics and wait until each has a leader for every partition.

        Existing topics are checked against their declaration: a different partition count
        or replication raises (tidings never repartitions: keys would move); a different
        retention is logged as a warning, and the topic is left as it is. Replication and
        min.insync.replicas of created topics follow `tidings.backends.kafka.replicas`
        (`implicit`: tidings creates these topics itself, nobody declared them).

        Raises:
            ConfigurationError: an existing topic has another partition count or
                replication than declared, or a topic needs more replicas than the cluster
                has live brokers.
        """
        wanted = {s.name: s for s in specs}
        if not wanted:
            return
        # Not known_topics: a topic seen once may have been deleted since.
        md = self.metadata()
        present = {
            name: tmd for name, tmd in md.topics.items() if tmd.error is None and tmd.partitions
        }
        for name, spec in wanted.items():
            tmd = present.get(name)
            if tmd is not None:
                replicas = len(tmd.partitions[min(tmd.partitions)].replicas)
                check_existing(spec, replicas, self.settings.servers)
                self.declared[name] = replace(spec, replication=replicas or spec.replication)
        missing = [
            with_durability(s, self.settings, self.declared, implicit=implicit)
            for name, s in wanted.items()
            if name not in present
        ]
        raced: set[str] = set()
        if missing:
            check_brokers(missing, len(md.brokers), self.settings.servers)
            raced = self._create(missing)
            for s in missing:
                self.declared[s.name] = s
            self._await_leaders([s.name for s in missing])
        existing = [s for name, s in wanted.items() if name in present or name in raced]
        for spec in existing:
            count = self.known_topics[spec.name]
            check_declaration(TopicSpec(spec.name, spec.partitions), self.url, count, None)
        self._report_retention([s for s in existing if s.retention is not None])

    def _create(self, specs: list[TopicSpec]) -> set[str]:
        """Create `specs`; return the names another client created first."""
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions_or_default,
                replication_factor=s.replication or -1,
                config={
                    **(
                        {"retention.ms": str(int(s.retention.total_seconds() * 1000))}
                        if s.retention is not None
                        else {}
                    ),
                    **dict(s.config),
                },
            )
            for s in specs
        ]
        timeout = self.settings.connect_timeout
        futures = self.client.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        raced = set()
        for name, future in futures.items():
            try:
                self.wait(future, f"create topic {name!r}")
            except BrokerError as exc:
                cause = kafka_error(exc.__cause__) if exc.__cause__ else None
                if cause is not None and cause.code() in REFUSED_CONFIG:
                    raise ConfigurationError(
                        f"Kafka at {self.settings.servers} refused to create topic "
                        f"{name!r}: {cause.str()}. Fix its partitions=, replication= or "
                        "config= (app.topic(...)) or the App-wide replication option."
                    ) from exc
                if cause is None or cause.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                raced.add(name)
        return raced

    def _report_retention(self, specs: list[TopicSpec]) -> None:
        """Warn about each existing topic whose retention differs from its declaration."""
        if not specs:
            return
        actual = self._retention_ms([s.name for s in specs])
        for spec in specs:
            ms = actual.get(spec.name)
            diffs = differences(
                spec, self.known_topics[spec.name], None if ms is None else ms / 1000
            )
            if diffs:
                LOG.warning(
                    "%s (Kafka: kafka-configs.sh --alter --entity-type topics --entity-name "
                    "%s --add-config retention.ms=N)",
                    conflict_message(spec, self.url, diffs).replace(
                        "tidings never changes an existing topic", "it is left as it is"
                    ),
                    spec.name,
                )

    def _retention_ms(self, names: list[str]) -> dict[str, int | None]:
        """Return each topic's effective retention.ms (None: unlimited)."""
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        timeout = self.settings.connect_timeout
        configs = self.client.describe_configs(resources, request_timeout=timeout)
        out: dict[str, int | None] = {}
        for resource, future in configs.items():
            entry = self.wait(future, "describe topic configs").get("retention.ms")
            ms = int(entry.value) if entry is not None and entry.value is not None else -1
            out[resource.name] = ms if ms >= 0 else None
        return out

    def _await_leaders(self, names: list[str]) -> None:
        deadline = time.monotonic() + self.settings.connect_timeout
        pending = set(names)
        while pending:
            md = self.metadata()
            for name in list(pending):
                tmd = md.topics.get(name)
                if (
                    tmd is not None
                    and tmd.error is None
                    and tmd.partitions
                    and all(p.leader >= 0 for p in tmd.partitions.values())
                ):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka at {self.settings.servers} created topics {sorted(pending)} but they "
                    f"have no leader after {self.settings.connect_timeout:g} s; check the "
                    "broker log."
                )
            if pending:
                time.sleep(0.05)

    def partition_count(self, topic: str) -> int:
        """Return how many partitions `topic` has.

        Raises:
            TopicNotFound: the topic does not exist (only `ensure_topics` creates topics).
        """
        count = self.known_topics.get(topic)
        if count is None:
            self.metadata(topic)
            count = self.known_topics.get(topic)
            if count is None:
                raise TopicNotFound(topic, self.url)
        return count

    def offsets(
        self, partitions: Iterable[TopicPartition], spec: OffsetSpec, *, missing_ok: bool = False
    ) -> dict[TopicPartition, int]:
        """Look up an offset per partition (earliest, latest or for a timestamp).

        With `missing_ok`, partitions of topics that do not exist are left out of the result,
        and so are, after a first try, those of a topic whose leaders cannot be found (one
        being deleted, say): a listing of many topics is not failed by one of them.
        """
        request = {KafkaTP(tp.topic, tp.partition): spec for tp in partitions}
        if not request:
            return {}
        timeout = self.settings.connect_timeout
        started = time.monotonic()
        while True:
            try:
                return self._list_offsets(request, missing_ok=missing_ok)
            except BrokerError as exc:
                # A partition created a moment ago may not have elected its leader yet.
                err = kafka_error(exc.__cause__) if exc.__cause__ else None
                waited = time.monotonic() - started
                if err is None or err.code() not in LEADERLESS or waited > timeout:
                    raise
                if missing_ok and waited > LEADERLESS_PATIENCE:
                    return self._offsets_by_topic(request)
            time.sleep(0.1)

    def _offsets_by_topic(self, request: dict[KafkaTP, OffsetSpec]) -> dict[TopicPartition, int]:
        """List each topic's offsets on its own, leaving out topics with no leaders."""
        by_topic: dict[str, dict[KafkaTP, OffsetSpec]] = {}
        for ktp, spec in request.items():
            by_topic.setdefault(ktp.topic, {})[ktp] = spec
        out: dict[TopicPartition, int] = {}
        for topic, part in sorted(by_topic.items()):
            try:
                out.update(self._list_offsets(part, missing_ok=True))
            except BrokerError as exc:
                err = kafka_error(exc.__cause__) if exc.__cause__ else None
                if err is None or err.code() not in LEADERLESS:
                    raise
                LOG.debug("offsets of %s left out: its leaders are not known (%s)", topic, err)
        return out

    def _list_offsets(
        self, request: dict[KafkaTP, OffsetSpec], *, missing_ok: bool
    ) -> dict[TopicPartition, int]:
        futures = self.client.list_offsets(request, request_timeout=self.settings.connect_timeout)
        out: dict[TopicPartition, int] = {}
        for ktp, future in futures.items():
            try:
                out[TopicPartition(ktp.topic, ktp.partition)] = self.wait(
                    future, "list offsets"
                ).offset
            except BrokerError as exc:
                err = kafka_error(exc.__cause__) if exc.__cause__ else None
                gone = err is not None and err.code() in MISSING
                if not (missing_ok and gone):
                    raise
        return out

    def topics(self) -> list[TopicInfo]:
        md = self.metadata()
        names = sorted(
            n for n, t in md.topics.items() if t.error is None and not is_internal_topic(n)
        )
        if not names:
            return []
        retention: dict[str, float | None] = {}
        min_insync: dict[str, int] = {}
        for name, entries in self.topic_configs(names).items():
            entry = entries.get("retention.ms")
            ms = int(entry.value) if entry is not None and entry.value is not None else -1
            source = getattr(entry, "source", None)
            overridden = getattr(source, "value", source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
            retention[name] = ms / 1000 if overridden and ms >= 0 else None
            entry = entries.get(MIN_INSYNC)
            if entry is not None and entry.value is not None:
                min_insync[name] = int(entry.value)
        tps = [TopicPartition(n, p) for n in names for p in sorted(md.topics[n].partitions)]
        began = time.monotonic()
        # A topic deleted while this runs (an operator, another client) is left out, not an
        # error for the whole listing.
        starts = self.offsets(tps, EARLIEST, missing_ok=True)
        ends = self.offsets(tps, LATEST, missing_ok=True)
        gone = {tp.topic for tp in tps if tp not in starts or tp not in ends}
        names = [n for n in names if n not in gone]
        tps = [tp for tp in tps if tp.topic not in gone]
        if time.monotonic() - began > SLOW_OFFSETS:
            # They waited out a leader election: show the replica state after it.
            fresh = self.metadata().topics
            md.topics.update(
                (n, fresh[n])
                for n in names
                if n in fresh and len(fresh[n].partitions) == len(md.topics[n].partitions)
            )
        return [
            TopicInfo(
                name=n,
                partitions=len(md.topics[n].partitions),
                retention=retention.get(n),
                start_offsets=tuple(starts[tp] for tp in tps if tp.topic == n),
                end_offsets=tuple(ends[tp] for tp in tps if tp.topic == n),
                leaders=tuple(p.leader for _, p in sorted(md.topics[n].partitions.items())),
                replicas=tuple(
                    tuple(p.replicas) for _, p in sorted(md.topics[n].partitions.items())
                ),
                in_sync=tuple(tuple(p.isrs) for _, p in sorted(md.topics[n].partitions.items())),
                min_insync=min_insync.get(n),
            )
            for n in names
        ]

    def topic_configs(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each topic's configuration entries (librdkafka `ConfigEntry`) by property name."""
        if not names:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        deadline = time.monotonic() + self.settings.connect_timeout
        while True:
            # librdkafka sends this to the broker metadata names as "controller"; just after
            # a broker died that may still be the dead one. Short tries, with fresh metadata
            # in between, find a live one within connect_timeout.
            remaining = deadline - time.monotonic()
            timeout = max(min(CONFIG_TRY, remaining), 0.1)
            configs = self.client.describe_configs(resources, request_timeout=timeout)
            try:
                return self._configs(configs)
            except BrokerError:
                if time.monotonic() + 0.1 >= deadline:
                    raise
            self.metadata()

    def _configs(self, futures: dict[Any, Future[Any]]) -> dict[str, dict[str, Any]]:
        """Wait for describe_configs answers; topics deleted meanwhile are left out."""
        out = {}
        for resource, future in futures.items():
            try:
                out[resource.name] = self.wait(future, "describe topic configs")
            except BrokerError as exc:
                err = kafka_error(exc.__cause__) if exc.__cause__ else None
                if err is None or err.code() not in MISSING:
                    raise
        return out

    def close(self) -> None:
        with self._lock:
            self._client = None
