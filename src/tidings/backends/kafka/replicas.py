"""How many copies each topic tidings creates on Kafka gets, and checks against the cluster.

The rule, lowest precedence first (see README "Running on a Kafka cluster"):

- replication: the topic's own ``replication=``; else, for a topic tidings creates itself
  (dead letters ``<topic>.<group>.dlq``, retries ``<topic>.<group>.retry``), that of the
  declared topic whose name it extends; else the app-wide ``replication`` option; else the
  highest replication among the topics this app declared, so delay tiers are never less
  durable than the user's topics; else the broker's ``default.replication.factor``.
- ``min.insync.replicas``: the topic's own ``config``; else the one inherited with the
  replication above; else the app-wide ``min_insync_replicas`` option; else 2 when the
  topic has 3 or more replicas (one broker may be down, every write is still on two
  brokers); else the broker's default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

# These are documented public names; the stubs just do not re-export them.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)

from tidings.backends.kafka.config import KafkaSettings
from tidings.exceptions import ConfigurationError
from tidings.records import TopicSpec
from tidings.replication import MIN_INSYNC

SAFE_MIN_INSYNC = 2
"""min.insync.replicas given to topics with 3+ replicas that do not choose their own."""


def with_durability(
    spec: TopicSpec,
    settings: KafkaSettings,
    declared: Mapping[str, TopicSpec],
    *,
    implicit: bool,
) -> TopicSpec:
    """Return `spec` with the replication and min.insync.replicas it gets (module docstring).

    `declared` holds the completed specs of topics this backend was asked to create;
    `implicit` says tidings creates this topic itself (nobody declared it), which lets it
    inherit from them.
    """
    config = dict(spec.config)
    replication = spec.replication
    source: TopicSpec | None = None
    if replication is None and implicit:
        parents = [p for n, p in declared.items() if spec.name.startswith(n + ".")]
        if parents:
            source = max(parents, key=lambda p: len(p.name))
        elif settings.replication is None and declared:
            source = max(declared.values(), key=lambda p: p.replication or 0)
        if source is not None and source.replication is None:
            source = None
        replication = source.replication if source is not None else settings.replication
    elif replication is None:
        replication = settings.replication
    if MIN_INSYNC not in config and replication is not None:
        inherited = dict(source.config).get(MIN_INSYNC) if source is not None else None
        if inherited is not None:
            config[MIN_INSYNC] = inherited
        elif settings.min_insync_replicas is not None:
            config[MIN_INSYNC] = str(min(settings.min_insync_replicas, replication))
        elif replication >= 3:
            config[MIN_INSYNC] = str(SAFE_MIN_INSYNC)
    return replace(spec, replication=replication, config=tuple(sorted(config.items())))


def check_brokers(specs: list[TopicSpec], brokers: int, servers: str) -> None:
    """Refuse topics asking for more replicas than the cluster has live brokers."""
    for spec in specs:
        if spec.replication is not None and spec.replication > brokers:
            raise ConfigurationError(
                f"Topic {spec.name!r} needs replication={spec.replication}, but the Kafka "
                f"cluster at {servers} has {brokers} live broker(s). Lower the replication "
                "(app.topic(..., replication=N) or App(..., replication=N)) or start the "
                "missing brokers."
            )


def check_existing(spec: TopicSpec, replicas: int, servers: str) -> None:
    """Refuse a declared replication that differs from an existing topic's."""
    if spec.replication is not None and replicas and spec.replication != replicas:
        raise ConfigurationError(
            f"Topic {spec.name!r} exists on {servers} with {replicas} replica(s) per "
            f"partition, but is declared with replication={spec.replication}. tidings does "
            "not change an existing topic's replication: declare "
            f"replication={replicas}, or reassign its partitions with Kafka's "
            "kafka-reassign-partitions tool first."
        )


DIAGNOSIS_TIMEOUT = 2.0
"""Seconds a failed publish spends asking the cluster why (on top of delivery_timeout)."""


def diagnose(client: AdminClient, topics: Iterable[str]) -> str:
    """Explain, from the cluster's metadata, why writes to `topics` cannot be acknowledged.

    Returns a sentence naming the partitions without a leader or with fewer in-sync
    replicas than their min.insync.replicas, and the fix; "" when none is found or the
    cluster does not answer within `DIAGNOSIS_TIMEOUT`.
    """
    names = sorted(set(topics))
    try:
        md = client.list_topics(timeout=DIAGNOSIS_TIMEOUT)
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names if n in md.topics]
        futures = client.describe_configs(resources, request_timeout=DIAGNOSIS_TIMEOUT)
        min_insync = {}
        for resource, future in futures.items():
            entry = future.result(timeout=DIAGNOSIS_TIMEOUT + 1).get(MIN_INSYNC)
            min_insync[resource.name] = int(entry.value) if entry is not None else 1
    except Exception:  # a diagnosis must never hide the failure it explains
        return ""
    problems: list[str] = []
    for name in names:
        tmd = md.topics.get(name)
        for pid, p in sorted(tmd.partitions.items()) if tmd is not None else ():
            if p.leader < 0:
                problems.append(
                    f"partition {pid} of {name!r} has no leader (replicas on brokers "
                    f"{sorted(p.replicas)}, none of them up)"
                )
            elif len(p.isrs) < min_insync.get(name, 1):
                problems.append(
                    f"partition {pid} of {name!r} has {len(p.isrs)} in-sync replica(s) (broker "
                    f"{', '.join(map(str, sorted(p.isrs)))}), below its min.insync.replicas="
                    f"{min_insync[name]}"
                )
    if not problems:
        return ""
    shown = "; ".join(problems[:3]) + (
        f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    )
    return (
        f"Cause: {shown}; live brokers: {', '.join(map(str, sorted(md.brokers))) or 'none'}. "
        "Kafka refuses these writes (NOT_ENOUGH_REPLICAS) until enough replicas are back in "
        "sync: restart the missing brokers (or lower the topic's min.insync.replicas, which "
        "trades durability for availability)."
    )
