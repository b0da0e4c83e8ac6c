"""Translate librdkafka failures into the tidings exception tree, with the fix in the message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from tidings.exceptions import (
    BrokerError,
    BrokerUnavailable,
    DeliveryUncertain,
    EventTooLarge,
    PublishError,
)
from tidings.records import OutgoingRecord

# Failures that mean "nothing answered", as opposed to "the broker said no".
UNREACHABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


def kafka_error(exc: BaseException) -> KafkaError | None:
    """Return the `KafkaError` carried by `exc`, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def describe(exc: BaseException) -> str:
    err = kafka_error(exc)
    return f"{err.name()}: {err.str()}" if err is not None else str(exc)


def broker_unavailable(servers: str, timeout: float, reason: str) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"No Kafka broker answered at {servers} within {timeout:g} s ({reason}). Is Kafka "
        "running? (In a tidings checkout, `scripts/kafka start` runs a local one.) Check the URL "
        "(--broker / TIDINGS_BROKER), or raise the backend option connect_timeout."
    )


def translate(exc: BaseException, action: str, servers: str, timeout: float) -> BrokerError:
    """Turn a failure of `action` into BrokerUnavailable (nothing answered) or BrokerError."""
    err = kafka_error(exc)
    if err is not None and err.code() in UNREACHABLE:
        return broker_unavailable(servers, timeout, f"{action}: {err.str()}")
    return BrokerError(f"Kafka at {servers} failed to {action}: {describe(exc)}.")


# Reports after which the broker may still have stored the record ("possibly persisted").
UNCERTAIN = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._PURGE_INFLIGHT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


def delivery_failure(
    records: Sequence[OutgoingRecord],
    refused: dict[int, KafkaException],
    reported: Sequence[tuple[int, KafkaError]],
    message_max_bytes: object,
    cause: str = "",
) -> PublishError:
    """The exception for a produce call whose records failed.

    `refused` (index -> error) are those this client would not take, `reported` the
    delivery reports with an error (refused by the broker, or lost in flight). The message
    says which side refused: librdkafka words its own size check "Broker: Message size
    too large" although no broker saw the record.
    `cause` is what the cluster's state says (`tidings.backends.kafka.replicas.diagnose`),
    put before the advice.
    """
    failed: dict[int, str] = {}
    client_limit = f"refused by this client: larger than its message.max.bytes={message_max_bytes}"
    too_large: list[int] = []
    for i, exc in refused.items():
        err = kafka_error(exc)
        if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            failed[i] = client_limit
            too_large.append(i)
        else:
            failed[i] = f"refused by this client: {describe(exc)}"
    uncertain = 0
    broker_refused: list[int] = []
    for i, err in reported:
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            failed[i] = "refused by the broker: larger than the topic's max.message.bytes"
            broker_refused.append(i)
        else:
            failed[i] = f"{err.name()}: {err.str()}"
        uncertain += err.code() in UNCERTAIN
    reasons = "; ".join(f"{n} x {why}" for why, n in Counter(failed.values()).most_common())
    indexes = sorted(failed)
    shown = ", ".join(map(str, indexes[:10])) + (" ..." if len(indexes) > 10 else "")
    topics = sorted({records[i].topic for i in failed})
    where = f"topic {topics[0]!r}" if len(topics) == 1 else f"topics {', '.join(topics)}"
    stored = len(records) - len(failed)
    head = (
        f"{len(failed)} of {len(records)} records were not stored in {where} ({reasons}); "
        f"record indexes: {shown}." + (f" The other {stored} were stored." if stored else "")
    )
    if too_large and len(too_large) == len(failed):
        rec = records[too_large[0]]
        return EventTooLarge(
            f"{head} Record {too_large[0]} is {_size(rec):,} bytes; this client's limit is "
            f"message.max.bytes={message_max_bytes} (topic {rec.topic!r}). Raise it "
            "(producer_config={'message.max.bytes': ...}, and the topic's max.message.bytes "
            "to match) or store the payload elsewhere."
        )
    if broker_refused and len(broker_refused) == len(failed):
        rec = records[broker_refused[0]]
        return EventTooLarge(
            f"{head} Record {broker_refused[0]} is {_size(rec):,} bytes; the broker refused "
            f"it. Raise the topic's max.message.bytes (kafka-configs --alter --entity-type "
            f"topics --entity-name {rec.topic} --add-config max.message.bytes=...) or store "
            "the payload elsewhere."
        )
    if cause:
        head = f"{head} {cause}"
    if uncertain == len(failed):
        return DeliveryUncertain(
            f"{head} Kafka may still have stored them (timed out in flight); publish "
            "them again if needed (consumers may see duplicates)."
        )
    return PublishError(f"{head} Nothing was retried; fix the cause and publish again.")


# Failures after which the cluster's replica state is worth reading (`replicas.diagnose`).
REPLICA_TROUBLE = UNCERTAIN | {
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}


def _size(rec: OutgoingRecord) -> int:
    return len(rec.value or b"") + len(rec.key or b"")
