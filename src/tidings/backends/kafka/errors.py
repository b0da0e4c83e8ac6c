"""Translate librdkafka failures into the tidings exception tree, with the fix in the message."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from tidings.exceptions import BrokerError, BrokerUnavailable

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
        "running? Start the local one with `scripts/kafka start`, check the broker URL "
        "(--broker / TIDINGS_BROKER), or raise the backend option connect_timeout."
    )


def translate(exc: BaseException, action: str, servers: str, timeout: float) -> BrokerError:
    """Turn a failure of `action` into BrokerUnavailable (nothing answered) or BrokerError."""
    err = kafka_error(exc)
    if err is not None and err.code() in UNREACHABLE:
        return broker_unavailable(servers, timeout, f"{action}: {err.str()}")
    return BrokerError(f"Kafka at {servers} failed to {action}: {describe(exc)}.")
