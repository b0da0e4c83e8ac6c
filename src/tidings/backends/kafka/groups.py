"""Consumer groups through librdkafka's AdminClient: committed offsets, lag, offset resets.

Bounded like every admin call by the backend's `connect_timeout` (see `KafkaAdmin.wait`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as KafkaTP

# A documented public name; the stubs just do not re-export it.
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from tidings.backends.base import GroupInfo, PartitionLag
from tidings.backends.kafka.admin import EARLIEST, INTERNAL_GROUP_PREFIX, LATEST, KafkaAdmin
from tidings.exceptions import BrokerError, ConfigurationError
from tidings.records import TopicPartition


def describe_groups(admin: KafkaAdmin, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    timeout = admin.settings.connect_timeout
    futures = admin.client.describe_consumer_groups(ids, request_timeout=timeout)
    return {g: admin.wait(f, f"describe group {g!r}") for g, f in futures.items()}


def committed(admin: KafkaAdmin, group: str) -> dict[TopicPartition, int]:
    """Return `group`'s committed offsets (empty for an unknown group)."""
    return committed_many(admin, [group])[group]


def committed_many(admin: KafkaAdmin, ids: list[str]) -> dict[str, dict[TopicPartition, int]]:
    """Committed offsets of several groups, asked for all at once (one request each)."""
    timeout = admin.settings.connect_timeout
    futures = {
        g: admin.client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(g)], request_timeout=timeout
        )[g]
        for g in ids
    }
    out: dict[str, dict[TopicPartition, int]] = {}
    for g, future in futures.items():
        result = admin.wait(future, f"list offsets of group {g!r}")
        out[g] = {
            TopicPartition(ktp.topic, ktp.partition): ktp.offset
            for ktp in result.topic_partitions or []
            if ktp.error is None and ktp.offset >= 0
        }
    return out


def groups(admin: KafkaAdmin, names: Collection[str] | None = None) -> list[GroupInfo]:
    """Describe every group (or those in `names`: only they are described and have their
    offsets read, so a worker asking for its own pays nothing for the others)."""
    admin.metadata()
    timeout = admin.settings.connect_timeout
    listing = admin.wait(admin.client.list_consumer_groups(request_timeout=timeout), "list groups")
    ids = sorted(
        g.group_id
        for g in listing.valid
        if not g.group_id.startswith(INTERNAL_GROUP_PREFIX)
        and (names is None or g.group_id in names)
    )
    described = describe_groups(admin, ids)
    offsets_of = committed_many(admin, ids)
    rows: list[tuple[str, str, tuple[str, ...], dict[TopicPartition, int], dict[Any, str]]] = []
    for gid in ids:
        desc = described[gid]
        owners: dict[TopicPartition, str] = {}
        members = []
        for m in desc.members:
            label = m.client_id or m.member_id
            members.append(label)
            for ktp in m.assignment.topic_partitions if m.assignment else []:
                owners[TopicPartition(ktp.topic, ktp.partition)] = label
        state = desc.state.name.replace("_", " ").title().replace(" ", "")
        rows.append((gid, state, tuple(sorted(members)), offsets_of[gid], owners))
    every = {tp for *_, committed, owners in rows for tp in (*committed, *owners)}
    ends = admin.offsets(every, LATEST, missing_ok=True)  # a topic may be gone since
    return [
        GroupInfo(
            gid,
            state,
            members,
            tuple(
                PartitionLag(tp.topic, tp.partition, committed.get(tp), ends[tp], owners.get(tp))
                for tp in sorted({*committed, *owners})
                if tp in ends
            ),
        )
        for gid, state, members, committed, owners in rows
    ]


def reset_group(
    admin: KafkaAdmin, group: str, topic: str, to: str | float, *, dry_run: bool = False
) -> dict[TopicPartition, int]:
    if to == "earliest":
        spec = EARLIEST
    elif to == "latest":
        spec = LATEST
    else:
        try:
            spec = OffsetSpec.for_timestamp(int(float(to) * 1000))
        except ValueError:
            raise ConfigurationError(
                f"Cannot reset group {group!r} to {to!r}: use 'earliest', 'latest' or a "
                "time (seconds since the epoch)."
            ) from None
    described = describe_groups(admin, [group]).get(group)
    if described is not None and described.members:
        names = ", ".join(sorted(m.client_id or m.member_id for m in described.members))
        raise ConfigurationError(
            f"Group {group!r} has {len(described.members)} live member(s) ({names}); stop "
            "its workers before resetting offsets."
        )
    md = admin.metadata(topic)
    tmd = md.topics.get(topic)
    if tmd is None or tmd.error is not None or not tmd.partitions:
        raise ConfigurationError(
            f"Topic {topic!r} does not exist on {admin.settings.servers}; check the name "
            "with `tidings topics list`."
        )
    tps = [TopicPartition(topic, p) for p in sorted(tmd.partitions)]
    offsets = admin.offsets(tps, spec)
    if to not in ("earliest", "latest"):  # no record at or after that time: the end
        ends = admin.offsets(tps, LATEST)
        offsets = {tp: o if o >= 0 else ends[tp] for tp, o in offsets.items()}
    if dry_run:
        return offsets
    request = ConsumerGroupTopicPartitions(
        group, [KafkaTP(tp.topic, tp.partition, o) for tp, o in offsets.items()]
    )
    timeout = admin.settings.connect_timeout
    futures = admin.client.alter_consumer_group_offsets([request], request_timeout=timeout)
    result = admin.wait(futures[group], f"reset offsets of group {group!r}")
    failed = [ktp for ktp in result.topic_partitions or [] if ktp.error is not None]
    if failed:
        raise BrokerError(
            f"Kafka refused to reset group {group!r} on {topic!r}: "
            + "; ".join(f"partition {k.partition}: {k.error}" for k in failed)
            + ". Make sure no worker of the group is running and retry."
        )
    return offsets
