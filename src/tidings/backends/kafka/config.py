"""Turn a broker URL, backend options and the environment into librdkafka configurations.

librdkafka's defaults favour latency over safety; tidings overrides the ones that would lose
or reorder data (see `PRODUCER_DEFAULTS` and `CONSUMER_DEFAULTS`). Every librdkafka property
(https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md) can be passed
through, lowest precedence first:

1. the environment: ``TIDINGS_KAFKA_<PROPERTY>``, upper case with ``_`` for ``.``
   (``TIDINGS_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` sets ``security.protocol``); the names
   scripts/kafka and the test suite use (`RESERVED_ENV`: PORT, HOME, LOG_LEVEL, ...) are
   not properties and are skipped;
2. ``config={...}`` (every client), ``producer_config={...}``, ``consumer_config={...}``
   with librdkafka's own dotted names;
3. keyword options, ``_`` for ``.`` (``sasl_mechanism="PLAIN"`` sets ``sasl.mechanism``).

tidings' own options (keyword or ``TIDINGS_KAFKA_<NAME>``): ``connect_timeout`` (seconds a
broker has to answer before `BrokerUnavailable`, default 10), ``delivery_timeout`` (seconds
a produced record may take to be acknowledged, default 30; librdkafka's
``message.timeout.ms``), ``delays`` (run the delay scheduler in group workers, default
true), ``delay_namespace`` (separate delay topics and scheduler group, for deployments
sharing a cluster; default none), ``replication`` and ``min_insync_replicas`` (defaults for
the topics this app creates; see `tidings.backends.kafka.replicas`). A property librdkafka
does not know raises `ConfigurationError` naming it and where it came from.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError

from tidings.backends.kafka.logs import QUIET
from tidings.exceptions import ConfigurationError

CONFIG_DOCS = "https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md"

PRODUCER_DEFAULTS: dict[str, object] = {
    "enable.idempotence": True,  # retries never duplicate or reorder
    "acks": "all",
    "partitioner": "murmur2_random",  # Java-compatible: a key lands where Java puts it
    "linger.ms": 5,  # batch bursts; `produce` flushes, so a lone publish does not wait
    # Only declared topics are created, with their partitions: a metadata request must never
    # make the broker create a topic (with its default of one partition).
    "allow.auto.create.topics": False,
}
CONSUMER_DEFAULTS: dict[str, object] = {
    "enable.auto.commit": False,  # the runtime commits only handled offsets
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
    # Exactly-once outputs (and aborted transactions) stay invisible until committed. This is
    # librdkafka's default too; stated so that it holds for every reader tidings opens.
    "isolation.level": "read_committed",
    # Partitions added to a topic are noticed (and assigned) within 10 s, not 5 minutes.
    "topic.metadata.refresh.interval.ms": 10_000,
}

# TIDINGS_KAFKA_* variables that belong to scripts/kafka or the test suite, not librdkafka.
RESERVED_ENV = frozenset(
    {
        "BOOTSTRAP",
        "BROKERS",
        "BROKER_HEAP",
        "CONTROLLER_PORT",
        "HOME",
        "JVM_OPTS",
        "LOG_LEVEL",
        "MVN_ARGS",
        "PORT",
        "PROPS",
        "RUN",
        "START_TIMEOUT",
        "STOP_TIMEOUT",
        "TOOL_OPTS",
    }
)
# librdkafka properties whose own names contain underscores.
UNDERSCORED = frozenset({"log_level"})


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Everything the Kafka backend needs to build its clients; see the module docstring."""

    servers: str
    connect_timeout: float = 10.0
    delivery_timeout: float = 30.0
    delays: bool = True
    delay_namespace: str = ""
    replication: int | None = None
    """Replicas of each partition of the topics this app creates (None: broker default)."""
    min_insync_replicas: int | None = None
    common: dict[str, object] = field(default_factory=dict)
    producer: dict[str, object] = field(default_factory=dict)
    consumer: dict[str, object] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    """Where each passed-through property came from, for error messages."""

    def producer_config(self) -> dict[str, object]:
        conf: dict[str, object] = {"bootstrap.servers": self.servers, "logger": QUIET}
        conf.update(PRODUCER_DEFAULTS)
        conf["message.timeout.ms"] = int(self.delivery_timeout * 1000)
        conf.update(self.common)
        conf.update(self.producer)
        return conf

    def consumer_config(self, group_id: str, *, start: str) -> dict[str, object]:
        conf: dict[str, object] = {"bootstrap.servers": self.servers, "logger": QUIET}
        conf.update(CONSUMER_DEFAULTS)
        # `start` is applied once, by the consumer handle, for a group's first read of a
        # topic; a partition whose position is lost later (out of range) starts over at
        # its earliest retained offset, never at the end.
        conf["auto.offset.reset"] = "earliest"
        conf.update(self.common)
        conf.update(self.consumer)
        conf["group.id"] = group_id
        return conf

    def admin_config(self) -> dict[str, object]:
        conf: dict[str, object] = {"bootstrap.servers": self.servers, "logger": QUIET}
        conf["error_cb"] = _admin_error
        conf["allow.auto.create.topics"] = False  # see PRODUCER_DEFAULTS
        conf.update(self.common)
        return conf


def _admin_error(err: KafkaError) -> None:
    QUIET.log(logging.ERROR if err.fatal() else logging.WARNING, "Kafka admin: %s", err.str())


def property_name(name: str) -> str:
    """Map a keyword or environment name (``sasl_mechanism``) to librdkafka's name."""
    lower = name.lower()
    return lower if lower in UNDERSCORED or "." in lower else lower.replace("_", ".")


def _seconds(value: object, origin: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ConfigurationError(f"{origin} must be a positive number of seconds, got {value!r}.")
    return seconds


def _flag(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{origin} must be true or false, got {value!r}.")


def _mapping(value: object, origin: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(
            f"{origin} must be a dict of librdkafka properties, e.g. "
            f"{{'security.protocol': 'SASL_SSL'}}; got {value!r}."
        )
    return value


def _count(value: object, origin: str) -> int:
    try:
        count = int(str(value))
    except ValueError:
        count = 0
    if isinstance(value, bool) or count < 1:
        raise ConfigurationError(f"{origin} must be a whole number >= 1, got {value!r}.")
    return count


OWN_OPTIONS = (
    "connect_timeout",
    "delivery_timeout",
    "delays",
    "delay_namespace",
    "replication",
    "min_insync_replicas",
)
SCOPED = {"config": "common", "producer_config": "producer", "consumer_config": "consumer"}


def load_settings(
    servers: str, options: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> KafkaSettings:
    """Merge environment and options into `KafkaSettings` (see the module docstring).

    Raises:
        ConfigurationError: an own option has a bad value or a scoped config is not a dict.
            Unknown librdkafka properties are caught later, when a client is built
            (`config_error` names them).
    """
    env = os.environ if environ is None else environ
    own: dict[str, tuple[object, str]] = {}
    scoped: dict[str, dict[str, object]] = {"common": {}, "producer": {}, "consumer": {}}
    origins: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith("TIDINGS_KAFKA_"):
            continue
        name = var.removeprefix("TIDINGS_KAFKA_")
        if name in RESERVED_ENV or not name:
            continue
        if name.lower() in OWN_OPTIONS:
            own[name.lower()] = (env[var], f"environment variable {var}")
            continue
        prop = property_name(name)
        scoped["common"][prop] = env[var]
        origins[prop] = f"environment variable {var}"
    # Scoped dicts first, so keyword options win over `config={...}` whatever their order.
    for key, value in sorted(options.items(), key=lambda kv: kv[0] not in SCOPED):
        if key in OWN_OPTIONS:
            own[key] = (value, f"option {key}=")
        elif key in SCOPED:
            for prop, prop_value in _mapping(value, f"option {key}=").items():
                scoped[SCOPED[key]][prop] = prop_value
                origins[prop] = f"option {key}={{{prop!r}: ...}}"
        else:
            prop = property_name(key)
            scoped["common"][prop] = value
            origins[prop] = f"option {key}="
    connect = own.get("connect_timeout")
    delivery = own.get("delivery_timeout")
    delays = own.get("delays")
    namespace = str(own["delay_namespace"][0]) if "delay_namespace" in own else ""
    if namespace and not re.fullmatch(r"[A-Za-z0-9_-]+", namespace):
        raise ConfigurationError(
            f"{own['delay_namespace'][1]} must be letters, digits, '_' or '-', got {namespace!r}."
        )
    replication = own.get("replication")
    min_insync = own.get("min_insync_replicas")
    return KafkaSettings(
        servers=servers,
        replication=_count(*replication) if replication else None,
        min_insync_replicas=_count(*min_insync) if min_insync else None,
        connect_timeout=_seconds(*connect) if connect else 10.0,
        delivery_timeout=_seconds(*delivery) if delivery else 30.0,
        delays=_flag(*delays) if delays else True,
        delay_namespace=namespace,
        common=scoped["common"],
        producer=scoped["producer"],
        consumer=scoped["consumer"],
        origins=origins,
    )


def config_error(exc: BaseException, settings: KafkaSettings, client: str) -> ConfigurationError:
    """Explain a librdkafka configuration failure (`KafkaException` or `TypeError`)."""
    text = str(exc.args[0]) if exc.args else str(exc)
    detail = getattr(exc.args[0], "str", None) if exc.args else None
    if callable(detail):
        text = str(detail())
    origin = ""
    for prop, source in settings.origins.items():
        if f'"{prop}"' in text or f"'{prop}'" in text or prop in text.split():
            origin = f" (set by {source})"
            break
    return ConfigurationError(
        f"Invalid Kafka {client} configuration{origin}: {text}. Fix or remove the property; "
        f"valid properties are listed at {CONFIG_DOCS}."
    )
